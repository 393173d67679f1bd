// Command client is wslab's stress client: `client --config FILE` opens
// [client] num_client WebSocket connections to the host, sends each its task
// sequence, checks every reply and reports latency and throughput. See
// `client --help` for flags and exit statuses.
package main

import (
	"os"

	"github.com/wslab/wslab/client"
)

func main() {
	os.Exit(client.Main(os.Args[1:], os.Stdout, os.Stderr))
}
