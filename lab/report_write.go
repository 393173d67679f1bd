package lab

// This file writes a Report out: report.md, report.json and report.html.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteReports writes report.md, report.json and report.html into dir,
// creating it.
func WriteReports(dir string, r *Report) error {
	page, err := r.HTML()
	if err != nil {
		return fmt.Errorf("report.html: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"report.md", []byte(r.Markdown())},
		{"report.json", append(js, '\n')},
		{"report.html", page},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
