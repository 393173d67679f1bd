package wire

import (
	"encoding/json"
	"fmt"
)

// ReattachEnv names the environment variable through which a host is
// given a plugin that was started by hand (Reattach), as the --reattach
// flag does.
const ReattachEnv = "WSLAB_REATTACH"

// Reattach is what a plugin started by hand in debug mode (under a
// debugger, say) prints for the host to use it instead of starting one,
// as Terraform's TF_REATTACH_PROVIDERS does with go-plugin's
// ReattachConfig. The control service listens on Network/Addr, without
// AutoMTLS (nothing handed the plugin a client certificate); the data
// channel is the Unix socket Data, which the plugin accepts once.
type Reattach struct {
	Strategy string `json:"strategy"`
	Version  int    `json:"version"` // plugin.ProtocolVersion of the plugin
	Network  string `json:"network"`
	Addr     string `json:"addr"`
	PID      int    `json:"pid"`
	Data     string `json:"data"`
}

// String is r as the plugin prints it and the host reads it: one line of
// JSON.
func (r Reattach) String() string {
	b, _ := json.Marshal(r) // strings and ints only: cannot fail
	return string(b)
}

// ParseReattach reads what a plugin printed.
func ParseReattach(s string) (Reattach, error) {
	var r Reattach
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Reattach{}, fmt.Errorf("reattach: %q is not what a plugin in debug mode prints: %w", s, err)
	}
	switch {
	case r.Strategy == "":
		return Reattach{}, fmt.Errorf("reattach: %s names no strategy", s)
	case r.Network == "" || r.Addr == "":
		return Reattach{}, fmt.Errorf("reattach: %s gives no control address", s)
	case r.Data == "":
		return Reattach{}, fmt.Errorf("reattach: %s gives no data channel", s)
	case r.PID <= 0:
		return Reattach{}, fmt.Errorf("reattach: %s gives no process", s)
	}
	return r, nil
}
