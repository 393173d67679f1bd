package distributed

import (
	"testing"
	"time"
)

func TestCancelsRoundTrip(t *testing.T) {
	var b []byte
	want := map[uint64]time.Duration{1: time.Millisecond, 42: 3 * time.Second, 1 << 60: time.Hour}
	for seq, ttl := range want {
		b = appendCancel(b, seq, ttl)
	}
	b = appendCancel(b, 7, -time.Second) // a deadline just past: remembered a moment all the same
	got := map[uint64]time.Duration{}
	for seq, ttl := range decodeCancels(b) {
		got[seq] = ttl
	}
	want[7] = time.Millisecond
	if len(got) != len(want) {
		t.Fatalf("decoded %v, want %v", got, want)
	}
	for seq, ttl := range want {
		if got[seq] != ttl {
			t.Errorf("seq %d: ttl %v, want %v", seq, got[seq], ttl)
		}
	}
}

func TestCancelsMalformed(t *testing.T) {
	for _, b := range [][]byte{{1}, make([]byte, cancelSize+1), make([]byte, cancelSize-1)} {
		for seq := range decodeCancels(b) {
			t.Errorf("%d bytes decoded to a cancel of %d", len(b), seq)
		}
	}
}
