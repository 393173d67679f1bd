package lab

// This file writes a Report out: report.md, report.json and report.html.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteReports writes report.md, report.json and report.html into dir,
// creating it, and returns report.md's text for the lab to print.
func WriteReports(dir string, r *Report) (string, error) {
	page, err := r.HTML()
	if err != nil {
		return "", fmt.Errorf("report.html: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("report.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	md := r.Markdown()
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"report.md", []byte(md)},
		{"report.json", append(js, '\n')},
		{"report.html", page},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return "", err
		}
	}
	return md, nil
}
