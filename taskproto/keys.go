package taskproto

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// KeyType is the type of value a configuration key holds.
type KeyType int

// The types a key may have; the numbers are the contract's KeyType.
const (
	KeyInt    KeyType = 1 // a whole number within [Min, Max]
	KeyString KeyType = 2 // any text, or one of Choices when there are some
	KeyBool   KeyType = 3 // true or false (1/0, yes/no, on/off are read too)
)

func (t KeyType) String() string {
	switch t {
	case KeyInt:
		return "int"
	case KeyString:
		return "string"
	case KeyBool:
		return "bool"
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// Key is a configuration key a strategy reads: it declares it, the host
// checks the file's value as it checks its own keys (a bad value stops it
// before it serves) and hands the strategy the effective value in
// Config.Settings, the default when the file leaves the key out. So a
// strategy owns its settings, and the host needs to know none of them.
type Key struct {
	Section string // lower case, as the file is read: "other", "pool"
	Name    string // lower case: "queue_size"
	Type    KeyType
	Default string // written as in the file
	// Min and Max bound a KeyInt, inclusive; math.MinInt64 and
	// math.MaxInt64 when a side has no bound.
	Min, Max int64
	Choices  []string // the values a KeyString may take ("" among them: may be empty); none: any
	Help     string   // one line
}

// ID is the key's name in Config.Settings: "section.name".
func (k Key) ID() string { return k.Section + "." + k.Name }

// Accepted describes the values the key takes: "a whole number between 1
// and 1024".
func (k Key) Accepted() string {
	switch k.Type {
	case KeyInt:
		switch {
		case k.Min == math.MinInt64 && k.Max == math.MaxInt64:
			return "a whole number"
		case k.Max == math.MaxInt64:
			return fmt.Sprintf("a whole number ≥ %d", k.Min)
		case k.Min == math.MinInt64:
			return fmt.Sprintf("a whole number ≤ %d", k.Max)
		}
		return fmt.Sprintf("a whole number between %d and %d", k.Min, k.Max)
	case KeyBool:
		return "true or false"
	case KeyString:
		if len(k.Choices) > 0 {
			choices := make([]string, len(k.Choices))
			for i, c := range k.Choices {
				choices[i] = cmp.Or(c, "(empty)")
			}
			return "one of " + strings.Join(choices, ", ")
		}
		return "any text"
	}
	return "nothing (unknown type)"
}

// Parse checks the file's value v and returns it as the strategy reads it:
// trimmed, and for an int or a bool in canonical form ("42", "true"). Its
// error says what is wrong in words a user of the file understands.
func (k Key) Parse(v string) (string, error) {
	switch k.Type {
	case KeyInt:
		n, err := k.ParseInt(v)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(n, 10), nil
	case KeyBool:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes", "on":
			return "true", nil
		case "false", "0", "no", "off":
			return "false", nil
		}
		return "", fmt.Errorf("%q is not true or false", strings.TrimSpace(v))
	case KeyString:
		s := strings.TrimSpace(v)
		if len(k.Choices) > 0 && !slices.Contains(k.Choices, s) {
			return "", fmt.Errorf("%q is not %s", s, k.Accepted())
		}
		return s, nil
	}
	return "", fmt.Errorf("the strategy declares the key with unknown type %v", k.Type)
}

// ParseInt is Parse for a KeyInt, giving the number.
func (k Key) ParseInt(v string) (int64, error) {
	s := strings.TrimSpace(v)
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q is out of range, must be %s", s, k.Accepted())
	case err != nil:
		return 0, fmt.Errorf("%q is not a whole number, must be %s", s, k.Accepted())
	}
	return n, k.CheckInt(n)
}

// CheckInt says what is wrong with n as a KeyInt's value; nil if nothing.
func (k Key) CheckInt(n int64) error {
	if n < k.Min || n > k.Max {
		return fmt.Errorf("must be %s, got %d", k.Accepted(), n)
	}
	return nil
}

// Check reports what is wrong with the declaration itself: a name the
// file cannot hold, an unknown type, bounds that exclude everything, or a
// default its own Parse refuses.
func (k Key) Check() error {
	valid := func(s string) bool {
		return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
	}
	switch {
	case !valid(k.Section) || !valid(k.Name):
		return fmt.Errorf("key %q: section and name must be lower-case letters, digits and '_'", k.ID())
	case k.Type != KeyInt && k.Type != KeyString && k.Type != KeyBool:
		return fmt.Errorf("key %s: unknown type %v", k.ID(), k.Type)
	case k.Type == KeyInt && k.Min > k.Max:
		return fmt.Errorf("key %s: min %d is above max %d", k.ID(), k.Min, k.Max)
	case k.Type == KeyInt && k.Min == 0 && k.Max == 0:
		// The zero value would allow only 0: surely bounds left out.
		return fmt.Errorf("key %s: declares no bounds (Min and Max are both 0; math.MinInt64 and math.MaxInt64 mean none)", k.ID())
	case strings.TrimSpace(k.Help) == "" || strings.ContainsAny(k.Help, "\r\n"):
		return fmt.Errorf("key %s: help must be one line", k.ID())
	}
	if _, err := k.Parse(k.Default); err != nil {
		return fmt.Errorf("key %s: default: %w", k.ID(), err)
	}
	return nil
}

// KeyError is a declared key whose value is wrong.
type KeyError struct {
	Key     Key
	Problem string
}

func (e *KeyError) Error() string { return "[" + e.Key.Section + "] " + e.Key.Name + ": " + e.Problem }

// ApplyKeys returns settings with every key of keys set to its checked
// effective value: the value settings holds, else the key's default. The
// other entries are copied as they are. Its error is a *KeyError.
func ApplyKeys(settings map[string]string, keys []Key) (map[string]string, error) {
	out := make(map[string]string, len(settings)+len(keys))
	for k, v := range settings {
		out[k] = v
	}
	for _, k := range keys {
		v, ok := settings[k.ID()]
		if !ok {
			v = k.Default
		}
		p, err := k.Parse(v)
		if err != nil {
			return nil, &KeyError{Key: k, Problem: err.Error()}
		}
		out[k.ID()] = p
	}
	return out, nil
}

// CheckKeys checks a strategy's declarations: each one, and that no key is
// declared twice.
func CheckKeys(keys []Key) error {
	seen := map[string]bool{}
	for _, k := range keys {
		if err := k.Check(); err != nil {
			return err
		}
		if seen[k.ID()] {
			return fmt.Errorf("key %s is declared twice", k.ID())
		}
		seen[k.ID()] = true
	}
	return nil
}
