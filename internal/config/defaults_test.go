package config

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/wslab/wslab/tasks"
)

// The task limits' defaults are the workloads' own constants: a test of
// those constants tests what production reads.
func TestLimitDefaultsAreTheTasksConstants(t *testing.T) {
	l := Default().Limits
	if l.MaxFibN != tasks.DefaultMaxFibN || l.MaxCPUN != tasks.DefaultMaxCPUN || l.MaxIOBytes != tasks.DefaultMaxIOBytes {
		t.Errorf("default limits fib %d, cpu %d, io %d; want the tasks package's %d, %d, %d",
			l.MaxFibN, l.MaxCPUN, l.MaxIOBytes, tasks.DefaultMaxFibN, tasks.DefaultMaxCPUN, tasks.DefaultMaxIOBytes)
	}
	c := Default()
	c.Limits.MaxCPUN = tasks.MaxCPUN + 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max_cpu_n") {
		t.Errorf("max_cpu_n beyond tasks.MaxCPUN: Validate() = %v, want an error naming max_cpu_n", err)
	}
}

// Every default config.ini documents, as "; key = value" or "key = value",
// is the default the code applies: the documentation and the code agree.
// Values that describe rather than state a default ("<number of CPUs>",
// an empty value for "none") are skipped, and so are the keys the file
// sets for the lab ([client], [task_setting], which the Python lab
// defined, are checked as set). The keys strategies declare are theirs:
// internal/e2e checks config.ini against what each plugin describes.
func TestConfigFileDocumentsTheDefaults(t *testing.T) {
	f, err := os.Open("../../config.ini")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := Default().Settings()
	for _, k := range []struct{ key, value string }{
		{"server.host", Default().Server.Host},
		{"server.log_level", Default().Server.LogLevel},
		{"server.log_format", Default().Server.LogFormat},
		{"server.timing_sample", "0"},
		{"task_setting.large_file_name", Default().TaskSetting.LargeFileName},
		{"lab.out", Default().Lab.Out},
		{"client.tasks", strings.Join(Default().Client.Tasks, ", ")},
		{"lab.scenarios", strings.Join(Default().Lab.Scenarios, ", ")},
		{"lab.capacity_tasks", strings.Join(Default().Lab.CapacityTasks, ", ")},
		{"lab.capacity_rates", "250, 500, 1000, 2000, 3000, 4000, 5000"},
	} {
		want[k.key] = k.value
	}
	section, checked := "", 0
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
			section = strings.Trim(text, "[]")
			continue
		}
		text = strings.TrimSpace(strings.TrimPrefix(text, ";"))
		key, rest, ok := strings.Cut(text, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " ()") {
			continue // prose
		}
		value, _, _ := strings.Cut(rest, " ;")
		value = strings.TrimSpace(value)
		w, known := want[section+"."+key]
		if !known || value == "" || strings.Contains(value, "<") {
			continue
		}
		checked++
		if value != w {
			t.Errorf("config.ini:%d: [%s] %s is documented as %q; the default is %q", line, section, key, value, w)
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d documented defaults: has config.ini's layout changed?", checked)
	}
}
