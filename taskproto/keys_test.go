package taskproto

import (
	"math"
	"strings"
	"testing"
)

func TestKeyParse(t *testing.T) {
	n := Key{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Min: 0, Max: 64, Help: "h"}
	b := Key{Section: "pool", Name: "pin", Type: KeyBool, Default: "false", Help: "h"}
	s := Key{Section: "d", Name: "storage", Type: KeyString, Choices: []string{"", "memory", "file"}, Help: "h"}
	free := Key{Section: "d", Name: "url", Type: KeyString, Help: "h"}
	for _, c := range []struct {
		key       Key
		in, want  string
		wantError string
	}{
		{n, " 7 ", "7", ""},
		{n, "64", "64", ""},
		{n, "65", "", "must be a whole number between 0 and 64, got 65"},
		{n, "-1", "", "got -1"},
		{n, "x", "", `"x" is not a whole number, must be a whole number between 0 and 64`},
		{n, "99999999999999999999", "", "is out of range"},
		{b, "Yes", "true", ""},
		{b, "off", "false", ""},
		{b, "2", "", `"2" is not true or false`},
		{s, "", "", ""},
		{s, "file", "file", ""},
		{s, "tape", "", `"tape" is not one of (empty), memory, file`},
		{free, " nats://x ", "nats://x", ""},
	} {
		got, err := c.key.Parse(c.in)
		if c.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantError) {
				t.Errorf("%s.Parse(%q) = %q, %v; want an error saying %q", c.key.ID(), c.in, got, err, c.wantError)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s.Parse(%q) = %q, %v; want %q", c.key.ID(), c.in, got, err, c.want)
		}
	}
}

func TestKeyAccepted(t *testing.T) {
	for _, c := range []struct {
		key  Key
		want string
	}{
		{Key{Type: KeyInt, Min: math.MinInt64, Max: math.MaxInt64}, "a whole number"},
		{Key{Type: KeyInt, Min: 1, Max: math.MaxInt64}, "a whole number ≥ 1"},
		{Key{Type: KeyInt, Min: math.MinInt64, Max: 9}, "a whole number ≤ 9"},
		{Key{Type: KeyBool}, "true or false"},
		{Key{Type: KeyString}, "any text"},
	} {
		if got := c.key.Accepted(); got != c.want {
			t.Errorf("%+v.Accepted() = %q, want %q", c.key, got, c.want)
		}
	}
}

// A strategy's declarations are checked before it serves: a key it cannot
// hold, a default its own bounds refuse, a key twice.
func TestCheckKeys(t *testing.T) {
	good := Key{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Min: 0, Max: 64, Help: "goroutines"}
	if err := CheckKeys([]Key{good}); err != nil {
		t.Errorf("CheckKeys(good) = %v", err)
	}
	for _, c := range []struct {
		name string
		keys []Key
		want string
	}{
		{"upper case", []Key{{Section: "Pool", Name: "workers", Type: KeyInt, Default: "0", Max: 1, Help: "h"}}, "lower-case"},
		{"no type", []Key{{Section: "pool", Name: "workers", Default: "0", Help: "h"}}, "unknown type"},
		{"empty bounds", []Key{{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Min: 2, Max: 1, Help: "h"}}, "min 2 is above max 1"},
		{"bad default", []Key{{Section: "pool", Name: "workers", Type: KeyInt, Default: "65", Max: 64, Help: "h"}}, "default"},
		{"no bounds", []Key{{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Help: "h"}}, "declares no bounds"},
		{"no help", []Key{{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Max: 64}}, "help"},
		{"twice", []Key{good, good}, "declared twice"},
	} {
		if err := CheckKeys(c.keys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: CheckKeys = %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestApplyKeys(t *testing.T) {
	keys := []Key{
		{Section: "pool", Name: "workers", Type: KeyInt, Default: "0", Min: 0, Max: 64, Help: "h"},
		{Section: "pool", Name: "pin", Type: KeyBool, Default: "false", Help: "h"},
	}
	got, err := ApplyKeys(map[string]string{"pool.pin": "on", "server.port": "1"}, keys)
	if err != nil || got["pool.workers"] != "0" || got["pool.pin"] != "true" || got["server.port"] != "1" || len(got) != 3 {
		t.Errorf("ApplyKeys = %v, %v", got, err)
	}
	cfg := Config{Settings: got}
	if cfg.Int("pool.workers") != 0 || !cfg.Bool("pool.pin") || cfg.String("server.port") != "1" {
		t.Errorf("Config accessors disagree with %v", got)
	}
	_, err = ApplyKeys(map[string]string{"pool.workers": "65"}, keys)
	if ke, ok := err.(*KeyError); !ok || ke.Key.Name != "workers" || err.Error() != "[pool] workers: must be a whole number between 0 and 64, got 65" {
		t.Errorf("ApplyKeys(bad) = %v", err)
	}
}
