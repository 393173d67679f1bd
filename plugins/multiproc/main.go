// Command multiproc is the strategy plugin that runs tasks in
// [other] multiprocessing_processes worker processes, each its own Go
// runtime, fed over Unix sockets. Started as `multiproc worker ...`, the same
// binary is one of those workers.
package main

import "github.com/wslab/wslab/internal/multiproc"

func main() { multiproc.Main(nil) }
