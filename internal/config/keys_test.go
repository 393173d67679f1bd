package config

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wslab/wslab/taskproto"
)

func TestSuggest(t *testing.T) {
	for _, c := range []struct {
		word       string
		candidates []string
		want       string
	}{
		{"workerz", []string{"queue_size", "workers"}, "workers"},        // a substitution
		{"wokrers", []string{"queue_size", "workers"}, "workers"},        // two neighbours swapped: one edit
		{"worker", []string{"queue_size", "workers"}, "workers"},         // a letter left out
		{"timeout_secs", []string{"timeout_sec", "port"}, "timeout_sec"}, // a letter too many
		{"Port", []string{"host", "port"}, "port"},                       // case alone
		{"asyn_semaphor", otherSectionKeys, "asyn_semaphore"},            // the Python lab's keys
		{"multiprocesing_processes", otherSectionKeys, "multiprocessing_processes"},
		{"queue_sise", []string{"queue_size", "workers"}, "queue_size"},
		{"bogus", []string{"host", "port", "timeout_sec"}, ""},              // nothing close
		{"workerz", []string{"worker_inflight", "worker_prefetch"}, ""},     // a prefix is not close
		{"ab", []string{"ac", "b"}, ""},                                     // short words are replaced, not misspelt
		{"pool", []string{"pool"}, ""},                                      // not a typo of itself
		{"max_queue", []string{"max_queued", "max_queue_ms"}, "max_queued"}, // the nearest wins
		{"sizes", []string{"size_a", "sized", "sizer"}, "sized"},            // of equals, the first sorted
		{"x", nil, ""},
	} {
		if got := Suggest(c.word, c.candidates); got != c.want {
			t.Errorf("Suggest(%q, %v) = %q, want %q", c.word, c.candidates, got, c.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3},
		{"workers", "workerz", 1}, {"workers", "wokrers", 1}, {"ca", "abc", 3}, {"héllo", "hello", 1},
	} {
		if got := editDistance([]rune(c.a), []rune(c.b)); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// poolKeys are keys a strategy declares, as the pool plugin does.
var poolKeys = []taskproto.Key{
	{Section: "pool", Name: "workers", Type: taskproto.KeyInt, Default: "0", Min: 0, Max: 65536, Help: "h"},
	{Section: "pool", Name: "queue_size", Type: taskproto.KeyInt, Default: "1024", Min: 1, Max: 10_000_000, Help: "h"},
}

func TestCheckKeysRefusesUnknownKeys(t *testing.T) {
	for _, c := range []struct {
		name, ini        string
		declared         []taskproto.Key
		section, key, at string // what the error names; "" section: no error
	}{
		{"server typo", "[server]\nprot = 1\n", nil, "server", "prot", "unknown key; did you mean port?"},
		{"server far", "[server]\nbogus = 1\n", nil, "server", "bogus",
			"unknown key (the keys of [server] are allowed_hosts, allowed_origins, auth_token, data_dir, host, " +
				"log_format, log_level, metrics_listen, plugin_dir, port, shutdown_grace_sec, timeout_sec, timing_sample, " +
				"tls_cert, tls_key, verify_plugins, watch_plugin)"},
		{"client", "[client]\nnum_clients = 3\n", nil, "client", "num_clients", "unknown key; did you mean num_client?"},
		{"task_setting", "[task_setting]\nfibonaci_limit = 3\n", nil, "task_setting", "fibonaci_limit", "unknown key; did you mean fibonacci_limit?"},
		{"limits", "[limits]\nmax_queue = 3\n", nil, "limits", "max_queue", "unknown key; did you mean max_queued?"},
		{"lab", "[lab]\nround = 3\n", nil, "lab", "round", "unknown key; did you mean rounds?"},
		{"other", "[other]\nasyn_semaphor = 3\n", nil, "other", "asyn_semaphor", "unknown key; did you mean asyn_semaphore?"},
		{"declared section", "[pool]\nworkerz = 4\n", poolKeys, "pool", "workerz", "unknown key; did you mean workers?"},
		{"declared far", "[pool]\nthreads = 4\n", poolKeys, "pool", "threads", "unknown key (the keys of [pool] are queue_size, workers)"},
		{"the first in the file", "[pool]\nworkerz = 4\n[server]\nprot = 1\n", poolKeys, "pool", "workerz", "did you mean workers?"},
		// Another strategy's section: its keys are not known here.
		{"undeclared section", "[pool]\nworkerz = 4\n", nil, "", "", ""},
		{"known keys", "[server]\nPORT = 1\n[other]\nasyn_semaphore = 2\nmultiprocessing_processes = 3\n[pool]\nworkers = 4\n", poolKeys, "", "", ""},
		// A strategy's key in [other] is known beside the Python lab's.
		{"declared in other", "[other]\nmy_key = 4\n",
			[]taskproto.Key{{Section: "other", Name: "my_key", Type: taskproto.KeyInt, Default: "1", Min: 1, Max: 9, Help: "h"}}, "", "", ""},
		{"DEFAULT is for every section", "[DEFAULT]\nanything = 1\n", nil, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, c.ini)
			cfg, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v (unknown keys are CheckKeys's)", err)
			}
			err = cfg.CheckKeys(c.declared)
			if c.section == "" {
				if err != nil {
					t.Fatalf("CheckKeys: %v, want nil", err)
				}
				return
			}
			checkError(t, err, path, c.section, c.key, c.at)
			// StrategySettings, which the host and the conformance kit
			// call with the keys a plugin declares, refuses it too.
			_, err = cfg.StrategySettings(c.declared)
			checkError(t, err, path, c.section, c.key, c.at)
		})
	}
}

func TestUnownedSections(t *testing.T) {
	cfg := mustLoad(t, "[DEFAULT]\nx = 1\n[server]\n[bogus_section]\n[pool]\nworkers = 1\n[other]\n[multiproc]\n[Server]\n[bogus_section]\n")
	if got, want := cfg.UnownedSections(poolKeys), []string{"bogus_section", "multiproc", "Server"}; !slices.Equal(got, want) {
		t.Errorf("UnownedSections(pool's keys) = %v, want %v", got, want)
	}
	if got, want := cfg.UnownedSections(nil), []string{"bogus_section", "pool", "multiproc", "Server"}; !slices.Equal(got, want) {
		t.Errorf("UnownedSections(nil) = %v, want %v", got, want)
	}
	if got := Suggest("Server", KnownSections(nil)); got != "server" {
		t.Errorf("Suggest(Server, KnownSections) = %q, want server", got)
	}
	if Default().UnownedSections(nil) != nil {
		t.Error("the defaults have sections")
	}
}

// Every key config.ini documents in the sections this package owns, set
// or commented out, is one it knows: CheckKeys refuses none of them.
func TestConfigFileKeysAreKnown(t *testing.T) {
	f, err := os.Open("../../config.ini")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	known := knownKeys(nil)
	section, checked := "", 0
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
			section = strings.Trim(text, "[]")
			continue
		}
		if !slices.Contains(OwnSections, section) && section != OtherSection {
			continue
		}
		key, _, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(text, ";")), "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " ()") {
			continue // prose
		}
		checked++
		if !slices.Contains(known[section], key) {
			t.Errorf("config.ini:%d documents [%s] %s, which CheckKeys would refuse", line, section, key)
		}
	}
	if checked < 50 {
		t.Errorf("checked only %d documented keys: has config.ini's layout changed?", checked)
	}
}
