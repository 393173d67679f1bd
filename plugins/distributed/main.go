// Command distributed is the strategy plugin whose tasks travel through NATS
// JetStream to workers, local or on other machines. Started as
// `distributed worker --nats URL ...`, the same binary is such a worker.
package main

import "github.com/wslab/wslab/internal/distributed"

func main() { distributed.Main(nil) }
