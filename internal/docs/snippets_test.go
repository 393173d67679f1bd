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

// The snippets checked, by the language their block names: the files they
// must be excerpts of, and how a comment starts in them.
var languages = []struct {
	block   *regexp.Regexp
	ext     string
	comment string
}{
	{regexp.MustCompile("(?ms)^[ \t]*```go\n(.*?)^[ \t]*```"), ".go", "//"},
	{regexp.MustCompile("(?ms)^[ \t]*```python\n(.*?)^[ \t]*```"), ".py", "#"},
}

// Every ```go and ```python block of README.md and docs/*.md is an
// excerpt of a file of the repository in that language (comments and
// indentation aside), so that what a reader copies is code that builds
// and is tested, never a sketch that names a function nobody wrote.
func TestSnippetsAreExcerpts(t *testing.T) {
	for _, lang := range languages {
		checkSnippets(t, lang.block, lang.ext, lang.comment)
	}
}

func checkSnippets(t *testing.T, block *regexp.Regexp, ext, comment string) {
	sources := sourcesOf(t, ext, comment)
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
		for _, m := range block.FindAllStringSubmatch(string(data), -1) {
			checked++
			snippet := "\n" + normalize(m[1], comment)
			if !containsExcerpt(sources, snippet) {
				t.Errorf("%s: this snippet is in no %s file of the repository:\n%s", filepath.Base(doc), ext, m[1])
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no %s snippet found: the pattern or the docs moved", ext)
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

// sourcesOf are the repository's files ending in ext, normalized,
// examples included.
func sourcesOf(t *testing.T, ext, comment string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ext) {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, "\n"+normalize(string(data), comment))
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
func normalize(s, comment string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, comment); i >= 0 && !strings.ContainsAny(line[:i], `"'`) {
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
