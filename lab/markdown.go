package lab

// report.md.

import (
	"fmt"
	"strings"
)

// Markdown is report.md: a title, the verdict, then per scenario its load
// and a table with one row per strategy, the isolation costs and the
// capacity table.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", r.title(), r.about())
	b.WriteString("## Verdict\n\n")
	for _, v := range r.verdict() {
		fmt.Fprintf(&b, "- **%s**: %s\n", v.Topic, v.Text)
	}
	fmt.Fprintf(&b, "\n%s\n", r.columnsNote())
	for _, sc := range r.Scenarios {
		fmt.Fprintf(&b, "\n## %s\n\n", sc.Name)
		if sc.Description != "" {
			fmt.Fprintf(&b, "%s\n\n", sc.Description)
		}
		if sc.Load != "" {
			fmt.Fprintf(&b, "Load: %s\n\n", sc.Load)
		}
		if sc.Name == scenarioLadder {
			r.ladderMarkdown(&b)
			continue
		}
		extra, mt := r.extraTable(sc.Name), r.mainTable(sc.Name)
		if extra != nil {
			if sc.Name == scenarioCapacity {
				b.WriteString("Median p99 at each offered rate, (rounds that sustained it / rounds):\n\n")
			}
			mdTable(&b, extra)
			if mt != nil {
				b.WriteString("\n")
			}
		}
		if sc.Name == scenarioRTT {
			if tt, cols := r.timelineTable(); tt != nil {
				b.WriteString("Where a noop's round trip goes, µs (medians over the rounds):\n\n")
				mdTable(&b, tt)
				fmt.Fprintf(&b, "\n%s\n\n", timelineNote(cols))
			}
		}
		if mt != nil {
			mdTable(&b, mt)
		}
		if kt := r.kinds(sc.Name); kt != nil {
			b.WriteString("\nLatency per task kind, p50 / p99 ms (medians over the rounds):\n\n")
			mdTable(&b, kt)
		}
		if ht := r.hostTable(sc.Name); ht != nil {
			fmt.Fprintf(&b, "\n%s:\n\n", hostTableTitle)
			mdTable(&b, ht)
			fmt.Fprintf(&b, "\n%s\n", r.hostNote(sc.Name))
		}
	}
	if fs := r.failures(); len(fs) > 0 {
		b.WriteString("\n## Failures\n\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "- %s under %s: %s\n", f.Strategy, f.Scenario, mdCode(f.Reason))
		}
	}
	if len(r.Contenders) > 0 {
		b.WriteString("\n## Contenders\n\n")
		for _, c := range r.Contenders {
			fmt.Fprintf(&b, "- %s: %s\n", c.Name, mdCode(c.Command))
		}
	}
	return b.String()
}

// ladderMarkdown is the ladder's section after its load: its table, the
// attacks each rung got, and the notes.
func (r *Report) ladderMarkdown(b *strings.Builder) {
	if t := r.ladderTable(); t != nil {
		mdTable(b, t)
		b.WriteString("\n")
	}
	if t := r.attacksTable(); t != nil {
		b.WriteString("What each attack got, as the attack tests recorded it:\n\n")
		mdTable(b, t)
		b.WriteString("\n")
	}
	for _, n := range r.ladderNotes() {
		fmt.Fprintf(b, "- %s\n", n)
	}
}

func mdTable(b *strings.Builder, t *table) {
	mdRow(b, t.Header)
	align := make([]string, len(t.Header))
	for i := range align {
		align[i] = "---:"
	}
	align[0] = "---"
	mdRow(b, align)
	for _, row := range t.Rows {
		cells := append([]string{row.Strategy}, row.Cells...)
		switch {
		case row.Failed != "":
			cells = append(cells, "failed: "+mdCode(row.Failed))
		case row.Note != "":
			cells = append(cells, row.Note)
		}
		for len(cells) < len(t.Header) {
			cells = append(cells, "")
		}
		mdRow(b, cells)
	}
}

// mdCode quotes s, on one line, as a code span: error text may hold
// markup ("<nil>", "*", "_").
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	fence, run := 1, 0
	for _, c := range s {
		if c != '`' {
			run = 0
			continue
		}
		run++
		fence = max(fence, run+1)
	}
	tick := strings.Repeat("`", fence)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return tick + s + tick
}

func mdRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		c = strings.ReplaceAll(strings.Join(strings.Fields(c), " "), "|", `\|`)
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}
