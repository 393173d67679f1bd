// Package wasm runs the task set compiled to WebAssembly: the Go sources of
// package tasks, built for wasip1 as a reactor (guest/), run by wazero's
// compiler in a pool of instances, each with memory of its own. The wasm
// strategy plugin (plugins/wasm) serves it.
package wasm

// The guest ABI, in this one place. The guest (guest/main.go) is a Go
// wasip1 reactor (-buildmode=c-shared): the host calls _initialize once per
// instance, then these exports, one call at a time per instance:
//
//	wslab_abi() -> i32
//	    ABIVersion; the host refuses a module that answers another.
//	wslab_input(len i32) -> i32
//	    a pointer to len bytes of guest memory for the task's kind, which the
//	    host writes before wslab_run; 0 when len is above MaxKindLen.
//	wslab_run(n i64) -> i32
//	    runs the task of that kind with argument n through tasks.Runner.
//	    r ≥ 0: it succeeded and its result is r bytes at wslab_output();
//	    r < 0: it failed, and -r-1 bytes at wslab_output() hold its error
//	    as "code\nmessage", code a taskproto.Code or empty for an error
//	    without one.
//	wslab_output() -> i32
//	    a pointer to the last wslab_run's outcome, valid until the next call.
//
// and imports from the host module "wslab":
//
//	cancelled() -> i32
//	    1 once the context of the call in progress has ended. The guest's
//	    tasks see it through their context's Err, which they consult as
//	    they go (every 1024 fib additions, 65536 cpu steps, 64 KiB of io),
//	    so a cancelled task returns its context's error and the instance
//	    stays usable.
//
// A sleep waits in WASI's poll_oneoff; when its call's context ends the
// host ends the instance there (see Instance). io tasks see only the data
// directory, preopened as GuestDataDir; its large_file_name comes in the
// environment variable LargeFileNameEnv.
const (
	ABIVersion = 1

	ExportABI    = "wslab_abi"
	ExportInput  = "wslab_input"
	ExportRun    = "wslab_run"
	ExportOutput = "wslab_output"

	HostModule     = "wslab"
	ImportCanceled = "cancelled"

	// MaxKindLen bounds the kind the host writes: kinds are short words.
	MaxKindLen = 64

	GuestDataDir     = "/data"
	LargeFileNameEnv = "WSLAB_LARGE_FILE_NAME"
	DataDirEnv       = "WSLAB_DATA_DIR" // GuestDataDir when a data directory is mounted
)
