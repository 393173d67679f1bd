package multiproc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/pb"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := []*pb.ExecuteResponse{
		{Seq: 1, Result: strings.Repeat("9", 21_000), Worker: "w0", QueueUs: 3, RunUs: 4},
		{}, // empty: a zero-length frame
		{Seq: 2, ErrorCode: "timeout", ErrorMessage: "late"},
		{Seq: 1 << 60, Result: "x"},
	}
	reqs := []*pb.ExecuteRequest{
		{Msg: &pb.ExecuteRequest_Task{Task: &pb.Task{Seq: 7, Kind: "fib", N: 90, TimeoutMs: 5}}},
		{Msg: &pb.ExecuteRequest_Cancel{Cancel: &pb.Cancel{Seq: 7}}},
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(pw, 64) // smaller than a frame
		for _, m := range msgs {
			if err := writeFrame(w, m); err != nil {
				werr <- err
				return
			}
		}
		for _, m := range reqs {
			if err := writeFrame(w, m); err != nil {
				werr <- err
				return
			}
		}
		werr <- w.Flush()
		pw.Close()
	}()
	r := bufio.NewReader(pr)
	var buf []byte // reused, big then small
	for i, want := range msgs {
		var got pb.ExecuteResponse
		if err := readFrame(r, &buf, &got); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("frame %d = %v, want %v", i, &got, want)
		}
	}
	for i, want := range reqs {
		var got pb.ExecuteRequest
		if err := readFrame(r, &buf, &got); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("request %d = %v, want %v", i, &got, want)
		}
	}
	var extra pb.ExecuteResponse
	if err := readFrame(r, &buf, &extra); !errors.Is(err, io.EOF) {
		t.Errorf("read past the end: %v, want io.EOF", err)
	}
	if err := <-werr; err != nil {
		t.Errorf("write: %v", err)
	}
}

func frameBytes(size uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, size)
	return append(b, body...)
}

func TestFrameErrors(t *testing.T) {
	valid, err := proto.Marshal(&pb.ExecuteResponse{Seq: 3, Result: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
		is      error
	}{
		{"too long", frameBytes(maxFrame+1, nil), "exceeds", nil},
		{"huge", frameBytes(^uint32(0), valid), "exceeds", nil},
		{"truncated body", frameBytes(uint32(len(valid)), valid[:len(valid)-2]), "read frame body", io.ErrUnexpectedEOF},
		{"body missing", frameBytes(10, nil), "read frame body", io.EOF},
		{"truncated length", []byte{0, 0}, "", io.ErrUnexpectedEOF},
		{"empty", nil, "", io.EOF},
		{"garbage body", frameBytes(3, []byte{0xff, 0xff, 0xff}), "decode frame", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf []byte
			var m pb.ExecuteResponse
			err := readFrame(bufio.NewReader(bytes.NewReader(tc.in)), &buf, &m)
			if err == nil {
				t.Fatalf("no error; read %v", &m)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to mention %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want errors.Is %v", err, tc.is)
			}
		})
	}
	// A frame of exactly maxFrame bytes is allowed (its body is absent
	// here, so the read fails on the body, not the length).
	var buf []byte
	var m pb.ExecuteResponse
	if err := readFrame(bufio.NewReader(bytes.NewReader(frameBytes(maxFrame, nil))), &buf, &m); err == nil || strings.Contains(err.Error(), "exceeds") {
		t.Errorf("frame of maxFrame bytes: %v, want a body read error", err)
	}
}

func TestFrameWriteError(t *testing.T) {
	pr, pw := io.Pipe()
	pr.Close()
	w := bufio.NewWriterSize(pw, 16)
	err := writeFrame(w, &pb.ExecuteResponse{Result: strings.Repeat("x", 100)})
	if err == nil {
		err = w.Flush()
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to a closed pipe: %v", err)
	}
}

func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want fault
	}{
		{"panic:fib:13", fault{action: "panic", kind: "fib", n: 13}},
		{"hog:cpu:7", fault{action: "hog", kind: "cpu", n: 7}},
		{"", fault{}},
		{"garbage", fault{}},
		{"panic:fib", fault{}},
		{"panic:fib:x", fault{}},
		{"panic:fib:13:1", fault{}},
		{"panic:fib:", fault{}},
	} {
		if got := parseFault(tc.in); got != tc.want {
			t.Errorf("parseFault(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestFaultInject(t *testing.T) {
	panics := func(f fault, task taskproto.Task) (p bool) {
		defer func() { p = recover() != nil }()
		f.inject(task)
		return false
	}
	f := parseFault("panic:fib:13")
	if !panics(f, taskproto.Task{Kind: "fib", N: 13}) {
		t.Error("panic:fib:13 did not panic on fib 13")
	}
	for _, task := range []taskproto.Task{{Kind: "fib", N: 12}, {Kind: "cpu", N: 13}, {Kind: "noop"}} {
		if panics(f, task) {
			t.Errorf("panic:fib:13 panicked on %+v", task)
		}
	}
	if panics(fault{}, taskproto.Task{Kind: "fib", N: 0}) {
		t.Error("the zero fault panicked")
	}
}

// TestStderrLines: a worker's non-JSON output (a panic report) is logged
// line by line, even when written in pieces.
func TestStderrLines(t *testing.T) {
	lb := &logBuf{}
	e := &Executor{log: hclog.New(&hclog.LoggerOptions{Output: lb, Level: hclog.Debug})}
	s := &stderrLines{w: &worker{e: e, name: "w3"}}
	for _, p := range []string{"pan", "ic: boom\n\ngoroutine 1", " [running]:\n", "tail"} {
		if n, err := s.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	out := lb.String()
	if strings.Count(out, "worker output") != 2 || !strings.Contains(out, "panic: boom") ||
		!strings.Contains(out, "goroutine 1 [running]:") || strings.Contains(out, "tail") || !strings.Contains(out, "w3") {
		t.Errorf("logged:\n%s", out)
	}
}
