package config

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/ini.v1"

	"github.com/wslab/wslab/taskproto"
)

// fileKey is a key as the file holds it, in the order it holds them.
type fileKey struct{ section, name string }

// OtherSection is the Python lab's section of strategy settings. Its keys
// are the Python lab's (otherSectionKeys), whichever strategy runs, and
// whatever key a strategy declares there.
const OtherSection = "other"

// otherSectionKeys are the keys the Python lab's [other] held: each is read
// by some strategy (semaphore, multiproc, python-multiprocessing), and a
// file written for the Python lab holds both whichever strategy runs.
var otherSectionKeys = []string{"asyn_semaphore", "multiprocessing_processes"}

// otherKeys are the keys Load parses on its own, beside intKeys and
// textKeys.
var otherKeys = []fileKey{
	{"server", "verify_plugins"},
	{"server", "watch_plugin"},
	{"server", "timing_sample"},
	{"lab", "capacity_rates"},
	{"lab", "external"},
}

// OwnSections are the sections whose every key this package knows: the
// Python lab's [server], [client] and [task_setting], and wslab's [limits]
// and [lab]. A key in them that it does not know is a mistake
// (CheckKeys).
var OwnSections = []string{"server", "client", "task_setting", "limits", "lab"}

// knownKeys returns, by section, the keys this package reads and the ones
// declared (by the strategy that runs), [other]'s included.
func knownKeys(declared []taskproto.Key) map[string][]string {
	known := map[string][]string{OtherSection: slices.Clone(otherSectionKeys)}
	add := func(section, name string) {
		if !slices.Contains(known[section], name) {
			known[section] = append(known[section], name)
		}
	}
	c := Default()
	for _, k := range c.intKeys() {
		add(k.Section, k.Name)
	}
	for _, k := range c.textKeys() {
		add(k.section, k.key)
	}
	for _, k := range otherKeys {
		add(k.section, k.name)
	}
	for _, k := range declared {
		add(k.Section, k.Name)
	}
	for s := range known {
		slices.Sort(known[s])
	}
	return known
}

// CheckKeys reports the first key of the file that nothing reads: a key
// this package does not know in one of OwnSections, a key of [other] that
// is neither the Python lab's nor declared, or a key of a section in which
// declared (the keys of the strategy that runs) has some that is not among
// them. Other sections belong to other strategies, whose keys are not
// known here (UnownedSections). Keys of [DEFAULT], configparser's keys for
// every section, are not checked. Its error is an *Error naming the file,
// section and key, with the nearest known key when one is close.
func (c *Config) CheckKeys(declared []taskproto.Key) error {
	known := knownKeys(declared)
	checked := map[string]bool{OtherSection: true}
	for _, s := range OwnSections {
		checked[s] = true
	}
	for _, k := range declared {
		checked[k.Section] = true
	}
	for _, k := range c.keys {
		if !checked[k.section] || slices.Contains(known[k.section], k.name) {
			continue
		}
		problem := "unknown key"
		if near := Suggest(k.name, known[k.section]); near != "" {
			problem += "; did you mean " + near + "?"
		} else {
			problem += fmt.Sprintf(" (the keys of [%s] are %s)", k.section, strings.Join(known[k.section], ", "))
		}
		return &Error{File: c.Path, Section: k.section, Key: k.name, Problem: problem}
	}
	return nil
}

// UnownedSections returns the file's sections, in the file's order, that
// neither this package reads (OwnSections, [other]) nor declared has a key
// in; [DEFAULT] aside. They may be another strategy's, or a mistake.
func (c *Config) UnownedSections(declared []taskproto.Key) []string {
	known := knownKeys(declared)
	var out []string
	for _, s := range c.sections {
		if _, ok := known[s]; !ok && s != ini.DefaultSection && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// KnownSections are the sections this package reads and those declared
// has keys in, sorted: what a misspelt section may have meant.
func KnownSections(declared []taskproto.Key) []string {
	var out []string
	for s := range knownKeys(declared) {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Suggest returns the candidate nearest to word, the one a typo most
// likely meant: by edit distance (insertions, deletions, substitutions and
// swaps of two neighbours, case aside), and only when it is close: at most
// one edit per three characters of word, and at least one, but for a word
// of one or two characters, which may differ only in case. Of candidates
// equally near, the first in sorted order; "" when none is close.
func Suggest(word string, candidates []string) string {
	w := []rune(strings.ToLower(word))
	// One edit replaces a word of one or two characters rather than fixes it.
	limit := max(1, len(w)/3)
	if len(w) <= 2 {
		limit = 0
	}
	best, bestD := "", limit+1
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if c == word {
			continue
		}
		if d := editDistance(w, []rune(strings.ToLower(c))); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// runes count one each.
func editDistance(a, b []rune) int {
	// d[i][j] is the distance of a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
