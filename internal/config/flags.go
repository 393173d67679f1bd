package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// Exit statuses shared by every command that parses flags.
const (
	ExitOK    = 0
	ExitUsage = 2 // bad flag or configuration value
)

// errFlagsReported stands for a command line the FlagSet has already
// explained on its output, so that it is not reported twice.
var errFlagsReported = errors.New("bad command line")

// Flags binds command-line flags to configuration keys, for every command
// that reads config.ini: a flag given on the command line overrides the
// file's value; a flag not given leaves it. Load the file, then Apply.
type Flags struct {
	fset   *flag.FlagSet
	config *string
	binds  map[string]binding // by flag name
}

type binding struct {
	section, key string
	set          func(*Config)
}

// NewFlags adds --config to fset (default file config.ini, which may be
// absent when not named) and returns the bindings of the other flags.
func NewFlags(fset *flag.FlagSet) *Flags {
	return &Flags{
		fset:   fset,
		config: fset.String("config", "config.ini", "configuration `file`; defaults apply when the default file is absent"),
		binds:  map[string]binding{},
	}
}

func (f *Flags) bind(name, section, key string, set func(*Config)) {
	f.binds[name] = binding{section, key, set}
}

// String binds flag name to the string key section.key, held at field(c).
func (f *Flags) String(name, section, key, usage string, field func(*Config) *string) {
	v := f.fset.String(name, "", usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = *v })
}

// Int binds flag name to the integer key section.key.
func (f *Flags) Int(name, section, key, usage string, field func(*Config) *int) {
	v := f.fset.Int(name, 0, usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = *v })
}

// List binds flag name to the comma-separated key section.key.
func (f *Flags) List(name, section, key, usage string, field func(*Config) *[]string) {
	v := f.fset.String(name, "", usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = SplitList(*v) })
}

// Bool binds flag name, given as --name or --name=false, to the boolean
// key section.key.
func (f *Flags) Bool(name, section, key, usage string, field func(*Config) *bool) {
	v := f.fset.Bool(name, false, usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = *v })
}

// Int64 binds flag name to the integer key section.key held in an int64.
func (f *Flags) Int64(name, section, key, usage string, field func(*Config) *int64) {
	v := f.fset.Int64(name, 0, usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = *v })
}

// Duration binds flag name, a duration such as 10s or 500ms, to the key
// section.key, which counts it in the unit its name says.
func (f *Flags) Duration(name, section, key, usage string, field func(*Config) *time.Duration) {
	v := f.fset.Duration(name, 0, usage+" (overrides ["+section+"] "+key+")")
	f.bind(name, section, key, func(c *Config) { *field(c) = *v })
}

// Given reports whether flag name was on the command line.
func (f *Flags) Given(name string) bool {
	given := false
	f.fset.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// Parse parses args and loads the configuration they name. It returns
// flag.ErrHelp for -h; a bad flag the FlagSet has already explained comes
// back as an error UsageStatus does not print again.
func (f *Flags) Parse(args []string) (*Config, error) {
	if err := f.fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errFlagsReported, err)
	}
	return f.Load()
}

// UsageStatus reports a failed Parse or Load on w, prefixed by the
// command's name, and returns the exit status: ExitOK for -h, ExitUsage
// otherwise.
func UsageStatus(w io.Writer, command string, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case !errors.Is(err, errFlagsReported):
		fmt.Fprintf(w, "%s: %v\n", command, err)
	}
	return ExitUsage
}

// Load reads the file --config names (or the defaults, when the default
// file is absent) and applies the flags given over it, checking the
// result. A bad value that came from a flag is reported as the flag's.
func (f *Flags) Load() (*Config, error) {
	c, err := LoadOrDefault(*f.config, f.Given("config"))
	if err != nil {
		return nil, err
	}
	var given []string
	f.fset.Visit(func(fl *flag.Flag) {
		if b, ok := f.binds[fl.Name]; ok {
			b.set(c)
			given = append(given, fl.Name)
		}
	})
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			for _, name := range given {
				if b := f.binds[name]; b.section == ce.Section && b.key == ce.Key {
					return nil, fmt.Errorf("--%s: %s", name, ce.Problem)
				}
			}
		}
		return nil, err
	}
	return c, nil
}
