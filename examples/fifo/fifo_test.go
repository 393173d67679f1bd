package main

import (
	"context"
	"testing"

	"github.com/wslab/wslab/taskproto"
)

// Every kind comes back right, through the strategy alone.
func TestFIFORunsTasks(t *testing.T) {
	settings, err := taskproto.ApplyKeys(map[string]string{"fifo.workers": "2"}, Keys)
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(taskproto.Config{DataDir: t.TempDir(), LargeFileName: "large.txt", Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := taskproto.Run(context.Background(), f, taskproto.Task{Kind: taskproto.KindFib, N: 20})
	if err != nil || res.Value != "6765" {
		t.Fatalf("fib 20 = %q, %v", res.Value, err)
	}
	if st, _ := f.Stats(context.Background()); st.Completed != 1 || st.Capacity != 2 {
		t.Errorf("stats %+v, want 1 completed of capacity 2", st)
	}
}
