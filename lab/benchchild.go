package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// benchChildEnv makes the lab binary, re-executed by the bench, one of its
// helper processes instead of the lab: "echo" answers bytes on fd 3 (the
// Unix-socket floor), "ws" is a bare gorilla WebSocket server (the
// WebSocket floor), "hold" opens idle connections (the memory figure),
// "nats" answers NATS requests (the floor distributed is held against).
const benchChildEnv = "WSLAB_BENCH_CHILD"

// BenchChild runs the helper process the environment asks for, if any; ok
// is false when this process is not one.
func BenchChild() (code int, ok bool) {
	switch os.Getenv(benchChildEnv) {
	case "":
		return 0, false
	case "echo":
		return echoChild(), true
	case "ws":
		return bareServerChild(), true
	case "hold":
		return holdChild(os.Args[1:]), true
	case "nats":
		return natsResponderChild(os.Args[1:]), true
	}
	fmt.Fprintf(os.Stderr, "unknown %s=%q\n", benchChildEnv, os.Getenv(benchChildEnv))
	return 2, true
}

// echoChild sends back every byte that comes on fd 3.
func echoChild() int {
	f := os.NewFile(3, "socket")
	conn, err := net.FileConn(f)
	if err != nil {
		return 1
	}
	buf := make([]byte, 1)
	for {
		if _, err := io.ReadFull(conn, buf); err != nil {
			return 0
		}
		if _, err := conn.Write(buf); err != nil {
			return 0
		}
	}
}

// bareServerChild is the least a WebSocket task server can do: it reads a
// frame, takes the id out of it and answers in the read loop, on gorilla's
// defaults. It prints its address and serves until stdin closes.
func bareServerChild() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		var out []byte
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			out = append(out[:0], `{"id":`...)
			out = append(out, jsonID(msg)...)
			out = append(out, `,"task":"noop","ok":true,"result":"","strategy":"bare","worker":"bare","queue_us":0,"run_us":0}`...)
			if ws.WriteMessage(websocket.TextMessage, out) != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// jsonID is the raw id of a request {"id":...,...}: the bare server does
// no more decoding than finding it.
func jsonID(msg []byte) []byte {
	i := bytes.Index(msg, []byte(`"id":`))
	if i < 0 {
		return []byte("null")
	}
	rest := msg[i+5:]
	if len(rest) > 0 && rest[0] == '"' {
		if j := bytes.IndexByte(rest[1:], '"'); j >= 0 {
			return rest[:j+2]
		}
	}
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return []byte("null")
	}
	return rest[:end]
}

// holdChild opens N idle WebSocket connections to URL, prints how many it
// has open, and holds them until stdin closes: args are N and URL.
func holdChild(args []string) int {
	if len(args) != 2 {
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 256, WriteBufferSize: 256}
	var conns []*websocket.Conn
	for len(conns) < n {
		ws, _, err := d.Dial(args[1], nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dial %d: %v\n", len(conns), err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		conns = append(conns, ws)
		// Answer pings so that the host keeps the connection.
		go func() {
			for {
				if _, _, err := ws.NextReader(); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println(len(conns))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "quit" {
			break
		}
	}
	return 0
}
