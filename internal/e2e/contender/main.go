// Command contender is a WebSocket server written for the lab's tests: it
// speaks the task protocol (plain text and JSON) with no strategy behind
// it, a goroutine per JSON request, so that the lab can run it as an
// outside contender ([lab] external) the way it runs the Python lab's
// servers.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wslab/wslab/internal/wsproto"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/tasks"
)

func main() {
	port := flag.Int("port", 0, "port to listen on")
	flag.Parse()
	if err := run(*port); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves until SIGTERM, which is how the lab stops a contender (or an
// interrupt), then ends every connection, waits for their tasks and
// removes the directory the io tasks write in.
func run(port int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "contender-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	runner := tasks.Runner{DataDir: dir, LargeFileName: "large.bin"}
	upgrader := websocket.Upgrader{}
	var handlers sync.WaitGroup
	srv := &http.Server{
		Addr: fmt.Sprintf("127.0.0.1:%d", port),
		// Requests live in ctx, so that the signal cancels their tasks.
		BaseContext: func(net.Listener) context.Context { return ctx },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handlers.Add(1)
			defer handlers.Done()
			conn, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer conn.Close()
			// Shutdown leaves upgraded connections alone: closing this one
			// on the signal ends serve's read.
			defer context.AfterFunc(r.Context(), func() { conn.Close() })()
			serve(r.Context(), conn, runner)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills at once
	// Well within the grace the lab gives a host before SIGKILL.
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	handlers.Wait()
	return err
}

// serve answers one connection: plain-text requests in order, JSON
// requests each in a goroutine of its own.
func serve(ctx context.Context, conn *websocket.Conn, runner tasks.Runner) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	defer wg.Wait()
	answer := func(req wsproto.Request) {
		start := time.Now()
		value, err := runner.Run(ctx, req.Task)
		var reply []byte
		if err != nil {
			reply = wsproto.EncodeError(req, taskproto.AsError(ctx, err))
		} else {
			reply = wsproto.EncodeResult(req, "contender", taskproto.Result{Value: value, Worker: "goroutine", Run: time.Since(start)})
		}
		mu.Lock()
		defer mu.Unlock()
		conn.WriteMessage(websocket.TextMessage, reply)
	}
	for {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			return
		}
		req, perr := wsproto.Parse(frame, wsproto.Defaults{FibN: 5000})
		switch {
		case perr != nil:
			mu.Lock()
			conn.WriteMessage(websocket.TextMessage, wsproto.EncodeError(req, perr))
			mu.Unlock()
		case req.JSON:
			wg.Add(1)
			go func() {
				defer wg.Done()
				answer(req)
			}()
		default:
			answer(req)
		}
	}
}
