package plugin

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wslab/wslab/taskproto/wire"
)

// DebugEnv names the environment variable that makes Serve run a plugin
// started by hand (under a debugger, say) instead of by the host: it
// prints a wire.Reattach line, WSLAB_REATTACH='{...}', and serves the
// host that is given it (bin/host --reattach, or that variable). The
// control service then has no AutoMTLS: nothing handed the plugin a
// client certificate; its socket and the data channel's are the user's
// own, in a directory only they may enter.
const DebugEnv = "WSLAB_PLUGIN_DEBUG"

// dataChannel is a plugin's data channel: the one it inherited, or, in
// debug mode, the first connection to its socket.
type dataChannel struct {
	ready chan struct{} // closed once conn is set
	conn  net.Conn
}

func inherited(conn net.Conn) *dataChannel {
	d := &dataChannel{ready: make(chan struct{}), conn: conn}
	close(d.ready)
	return d
}

// wait is the channel once the host has joined it, or an error when ctx
// ends first.
func (d *dataChannel) wait(ctx context.Context) (net.Conn, error) {
	select {
	case <-d.ready:
		return d.conn, nil
	case <-ctx.Done():
		return nil, status.Error(codes.FailedPrecondition, "the host has not connected to the data channel")
	}
}

// serveDebug is Serve for a plugin started by hand: it exits once the host
// it served closes the data channel, as a plugin the host started does.
func serveDebug(s Strategy, log hclog.Logger) {
	fail := func(what string, err error) {
		log.Error("debug mode: "+what, "error", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "wslab-debug-")
	if err != nil {
		fail("make a directory for the data channel's socket", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "data.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fail("listen for the host's data channel", err)
	}
	data := &dataChannel{ready: make(chan struct{})}
	go func() { // one host: the first connection is the data channel
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			log.Error("debug mode: accept the host's data channel", "error", err)
			return
		}
		data.conn = conn
		close(data.ready)
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopProfile := StartProfile(s.Name)
	srv := &controlServer{strategy: s, log: log, data: data, exit: func(code int) {
		stopProfile()
		os.RemoveAll(dir)
		os.Exit(code)
	}}
	attach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	sc := serveConfig(srv)
	sc.Test = &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: attach, CloseCh: closed}
	go plugin.Serve(sc)
	rc := <-attach
	r := wire.Reattach{Strategy: s.Name, Version: rc.ProtocolVersion, Network: rc.Addr.Network(), Addr: rc.Addr.String(),
		PID: rc.Pid, Data: sock}
	log.Info("debug mode: waiting for a host; start one with bin/host --reattach '" + r.String() + "'")
	fmt.Printf("%s='%s'\n", wire.ReattachEnv, r)
	<-closed // the host asked the plugin to stop
	srv.close()
	stopProfile()
}
