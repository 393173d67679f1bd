package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, from this package's directory.
const root = "../.."

var goBlock = regexp.MustCompile("(?ms)^```go\n(.*?)^```")

// Every ```go block of README.md and docs/*.md is an excerpt of a Go file
// of the repository (comments and indentation aside), so that what a
// reader copies is code that builds and is tested, never a sketch that
// names a function nobody wrote.
func TestGoSnippetsAreExcerpts(t *testing.T) {
	sources := goSources(t)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, doc := range append(docs, filepath.Join(root, "README.md")) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goBlock.FindAllStringSubmatch(string(data), -1) {
			checked++
			snippet := "\n" + normalize(m[1])
			if !containsExcerpt(sources, snippet) {
				t.Errorf("%s: this Go snippet is in no Go file of the repository:\n%s", filepath.Base(doc), m[1])
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Go snippet found: the pattern or the docs moved")
	}
}

func containsExcerpt(sources []string, snippet string) bool {
	for _, src := range sources {
		if strings.Contains(src, snippet) {
			return true
		}
	}
	return false
}

// goSources are the repository's Go files, normalized, examples' modules
// included.
func goSources(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, "\n"+normalize(string(data)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// normalize drops comments, indentation and blank lines, so that a
// snippet may say more in its comments or less in its layout than the
// file it is taken from.
func normalize(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 && !strings.Contains(line[:i], `"`) {
			line = line[:i]
		}
		line = strings.Join(strings.Fields(line), " ")
		if line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
