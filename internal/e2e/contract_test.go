//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/host"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/internal/supervise"
	"github.com/wslab/wslab/taskproto/plugin"
)

// pluginDirWith makes a plugin directory holding a copy of the built pool
// plugin and, when manifest is not nil, a SHA256SUMS of the given lines.
func pluginDirWith(t *testing.T, manifest func(poolSum string) string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	data, err := os.ReadFile(filepath.Join(binDir, "plugins", "pool"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pool"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if manifest != nil {
		if err := os.WriteFile(filepath.Join(dir, launch.ChecksumsFile), []byte(manifest(hex.EncodeToString(sum[:]))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// With [server] verify_plugins on, the host starts a plugin whose SHA-256
// is the manifest's, and refuses, before running it, one that was changed
// or that the manifest does not list.
func TestVerifyPlugins(t *testing.T) {
	dir := pluginDirWith(t, func(sum string) string { return sum + "  pool\n" })
	ini := "verify_plugins = true\nplugin_dir = " + dir + "\n"
	h := startHost(t, "pool", ini)
	ws := h.dial(t)
	if got, err := call(ws, "fib", 5*time.Second); err != nil || strings.Contains(got, "error") {
		t.Errorf("fib through the verified plugin: %q, %v", got, err)
	}

	// One byte appended: still a runnable binary, no longer the one built.
	tampered := pluginDirWith(t, func(sum string) string { return sum + " *pool\n" })
	f, err := os.OpenFile(filepath.Join(tampered, "pool"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	unlisted := pluginDirWith(t, func(string) string { return strings.Repeat("0", 64) + "  other\n" })
	for _, c := range []struct {
		name, dir string
		want      []string
	}{
		{"changed", tampered, []string{"refused: its SHA-256 is", "the manifest says", "checksums did not match"}},
		{"unlisted", unlisted, []string{"lists no checksum of plugin pool"}},
		{"no manifest", pluginDirWith(t, nil), []string{"verify_plugins is on", launch.ChecksumsFile}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := errWriteFile(t, "verify.ini", "[server]\nhost = 127.0.0.1\nport = 0\nverify_plugins = yes\n")
			_, stderr, code := errRunHost(t, "--config", conf, "--plugin", "pool", "--plugin-dir", c.dir)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "plugin ready") {
				t.Errorf("the refused plugin was started:\n%s", stderr)
			}
		})
	}
}

// A plugin that speaks an older version of the contract is refused with
// both versions named, and nothing it started is left running.
func TestOldProtocolPluginRefused(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// What a version-2 plugin answers go-plugin's handshake with, then
	// stays, with a child of its own, as a plugin would.
	script := fmt.Sprintf("#!/bin/sh\necho $$ > %s\nsleep 30 &\necho '1|2|unix|%s/none.sock|grpc'\nwait\n", pidFile, dir)
	if err := os.WriteFile(filepath.Join(dir, "old"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := errWriteFile(t, "old.ini", "[server]\nhost = 127.0.0.1\nport = 0\n")
	_, stderr, code := errRunHost(t, "--config", conf, "--plugin", "old", "--plugin-dir", dir)
	if code != 1 {
		t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
	}
	for _, w := range []string{
		"another version of the wslab plugin contract",
		"which speaks version " + strconv.Itoa(plugin.ProtocolVersion),
		"Plugin version: 2", fmt.Sprintf("Client versions: [%d]", plugin.ProtocolVersion),
	} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr)
		}
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the old plugin never ran: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if !supervise.WaitGone(pid, 5*time.Second) {
		t.Errorf("the refused plugin %d is still running", pid)
	}
	if left := supervise.GroupMembers(pid); len(left) > 0 {
		t.Errorf("processes of the refused plugin's group still running: %v", left)
	}
}

// documentedKey is a key as config.ini documents it and `host --describe`
// prints it.
type documentedKey struct{ section, name, value string }

// documentedKeys reads keys in the format config.ini and `host --describe`
// share: "[section]" lines, then "key = value" or "; key = value ; note"
// lines. The other lines (prose, a note's next lines) are left out, and
// returned in prose.
func documentedKeys(text string) (keys []documentedKey, prose []string) {
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.Trim(line, "[]")
			continue
		}
		key, value, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, ";")), "=")
		if key = strings.TrimSpace(key); !ok || key == "" || strings.ContainsAny(key, " ()") {
			prose = append(prose, line)
			continue
		}
		value, _, _ = strings.Cut(value, " ;")
		keys = append(keys, documentedKey{section, key, strings.TrimSpace(value)})
	}
	return keys, prose
}

// describe runs `host --plugin name --describe` and reads its lines.
func describe(t *testing.T, name string) []documentedKey {
	t.Helper()
	conf := errWriteFile(t, "empty.ini", "")
	stdout, stderr, code := errRunHost(t, "--config", conf, "--plugin", name, "--plugin-dir", filepath.Join(binDir, "plugins"), "--describe")
	if code != 0 {
		t.Fatalf("describe %s: exit status %d; stderr:\n%s", name, code, stderr)
	}
	keys, prose := documentedKeys(stdout)
	for _, line := range prose {
		if strings.HasPrefix(line, "; ") { // every such line declares a key
			t.Fatalf("describe %s: unreadable line %q", name, line)
		}
	}
	for _, k := range keys {
		if k.section == "" {
			t.Fatalf("describe %s: key %s outside a section", name, k.name)
		}
	}
	return keys
}

// config.ini documents every key each shipped plugin declares, with the
// plugin's own default: the plugins own their keys, and the file that
// documents them agrees with them.
func TestConfigFileDocumentsPluginKeys(t *testing.T) {
	data, err := os.ReadFile("../../config.ini")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := documentedKeys(string(data))
	documented := map[string]string{} // section.key → value written
	for _, k := range keys {
		documented[k.section+"."+k.name] = k.value
	}
	names, err := host.ListPlugins(filepath.Join(binDir, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range names {
		for _, k := range describe(t, name) {
			v, ok := documented[k.section+"."+k.name]
			switch {
			case !ok:
				t.Errorf("plugin %s declares [%s] %s, which config.ini does not document", name, k.section, k.name)
			case strings.HasPrefix(v, "<"): // described, not stated ("<number of CPUs>")
			case v != k.value:
				t.Errorf("config.ini documents [%s] %s = %q; plugin %s's default is %q", k.section, k.name, v, name, k.value)
			}
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d declared keys", checked)
	}
}
