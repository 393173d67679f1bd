package client

// Clipping client and host text for the samples a summary shows.

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// clipJSON shortens valid JSON for a sample.
func clipJSON(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	head, more := clip(b, 120)
	return string(head) + more
}

// clipQuote quotes reply text for a sample, shortened.
func clipQuote(b []byte) string {
	head, more := clip(b, 80)
	return strconv.Quote(string(head)) + more
}

// clip cuts b to at most limit bytes, on a rune boundary so that a sample
// shows no broken character; more then says how long b was.
func clip(b []byte, limit int) (head []byte, more string) {
	if len(b) <= limit {
		return b, ""
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(b[cut]) {
		cut--
	}
	return b[:cut], fmt.Sprintf("... (%d bytes)", len(b))
}
