package faults

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Fault
	}{
		{"panic:fib:13", Fault{Action: "panic", Kind: "fib", N: 13}},
		{"hog:cpu:7", Fault{Action: "hog", Kind: "cpu", N: 7}},
		{"", Fault{}},
		{"garbage", Fault{}},
		{"panic:fib", Fault{}},
		{"panic:fib:x", Fault{}},
		{"panic:fib:13:1", Fault{}},
		{"panic:fib:", Fault{}},
	} {
		if got := Parse(c.in); got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}
