package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Options say what module a Module loads and how its instances run.
type Options struct {
	Path string // the guest's .wasm
	// MaxMemoryMB caps each instance's linear memory; a task that needs
	// more traps, and its instance is replaced.
	MaxMemoryMB int
	// CloseOnContextDone compiles wazero's termination checks into every
	// loop of the guest (RuntimeConfig.WithCloseOnContextDone): when the
	// context of a call ends, wazero ends the instance wherever the guest
	// is, so a task deaf to its context (a hostile loop) still stops, and
	// its instance is replaced. The price: each loop header of the guest
	// calls back into Go, and Go's wasm code is loops everywhere, so CPU
	// work runs about 20 times slower (BenchmarkTask). Off, the guest's
	// tasks stop only through their context (abi.go), as the native ones
	// do: for trusted guests alone.
	CloseOnContextDone bool
	// CacheDir, when not empty, keeps the compiled module there across
	// processes (see OpenCache): a restarted plugin need not compile again.
	CacheDir string
	// DataDir is preopened for io tasks as GuestDataDir; nothing else of
	// the file system is visible to the guest.
	DataDir       string
	LargeFileName string
	// GuestEnv is more of the guest's environment, "KEY=VALUE" each (the
	// attack tests' targets); the plugin `make build` ships passes none.
	GuestEnv []string
	Log      hclog.Logger // nil: discard
}

// Module is the guest compiled once, from which instances are made.
type Module struct {
	opt      Options
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	maxBytes uint64
}

// BytesPerMB is a MiB; wasm pages are 64 KiB.
const (
	BytesPerMB   = 1 << 20
	pageSize     = 64 << 10
	pagesPerMB   = BytesPerMB / pageSize
	maxWasmPages = 65536 // a 32-bit memory's 4 GiB
)

// Load reads and compiles the module at opt.Path. Its error names the path
// and says how to build the module when it is missing.
func Load(ctx context.Context, opt Options) (*Module, error) {
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	bin, err := os.ReadFile(opt.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("wasm module %s is missing: `make build` builds it", opt.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("read wasm module: %w", err)
	}
	pages := opt.MaxMemoryMB * pagesPerMB
	if pages < 1 || pages > maxWasmPages {
		return nil, fmt.Errorf("wasm: max_memory_mb %d outside 1..%d", opt.MaxMemoryMB, maxWasmPages/pagesPerMB)
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(opt.CloseOnContextDone).
		WithMemoryLimitPages(uint32(pages))
	if opt.CacheDir != "" {
		cache, err := OpenCache(opt.CacheDir, bin)
		if err != nil {
			// A cache is a speed-up: without one the module is compiled.
			opt.Log.Warn("compiling the wasm module without a cache", "error", err)
		} else {
			rc = rc.WithCompilationCache(cache)
		}
	}
	m := &Module{opt: opt, rt: wazero.NewRuntimeWithConfig(ctx, rc), maxBytes: uint64(pages) * pageSize}
	if err := m.load(ctx, bin); err != nil {
		m.rt.Close(ctx)
		return nil, err
	}
	return m, nil
}

func (m *Module) load(ctx context.Context, bin []byte) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	_, err := m.rt.NewHostModuleBuilder(HostModule).
		NewFunctionBuilder().WithFunc(hostCancelled).Export(ImportCanceled).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("wasm: instantiate host module %s: %w", HostModule, err)
	}
	if m.compiled, err = m.rt.CompileModule(ctx, bin); err != nil {
		return fmt.Errorf("compile wasm module %s: %w", m.opt.Path, err)
	}
	for _, name := range []string{ExportABI, ExportInput, ExportRun, ExportOutput} {
		if _, ok := m.compiled.ExportedFunctions()[name]; !ok {
			return fmt.Errorf("wasm module %s does not export %s: not the wslab guest, or an old one (`make build` rebuilds it)", m.opt.Path, name)
		}
	}
	return nil
}

// hostCancelled is the guest's import wslab.cancelled: ctx is that of the
// call in progress.
func hostCancelled(ctx context.Context) int32 {
	if ctx.Err() != nil {
		return 1
	}
	return 0
}

// MaxMemoryBytes is the cap on each instance's memory.
func (m *Module) MaxMemoryBytes() uint64 { return m.maxBytes }

// Path is where the module was read from.
func (m *Module) Path() string { return m.opt.Path }

// Close frees the runtime and every instance still open.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// Instantiate makes a new instance, with memory of its own, and starts
// the guest's runtime in it (_initialize). ctx bounds that start only.
func (m *Module) Instantiate(ctx context.Context) (*Instance, error) {
	in := &Instance{module: m}
	fsc := wazero.NewFSConfig()
	cfg := wazero.NewModuleConfig().
		WithName(""). // instances of one module need no names, and may not share one
		WithStartFunctions("_initialize").
		WithStderr(&in.stderr).
		WithSysWalltime().WithSysNanotime().
		WithNanosleep(in.nanosleep).
		// os.CreateTemp's names come from the guest's random source:
		// wazero's default is the same for every instance.
		WithRandSource(rand.Reader).
		WithEnv(LargeFileNameEnv, m.opt.LargeFileName)
	for _, kv := range m.opt.GuestEnv {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cfg = cfg.WithEnv(k, v)
		}
	}
	if m.opt.DataDir != "" {
		fsc = fsc.WithDirMount(m.opt.DataDir, GuestDataDir)
		cfg = cfg.WithEnv(DataDirEnv, GuestDataDir)
	}
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, cfg.WithFSConfig(fsc))
	if err != nil {
		return nil, fmt.Errorf("instantiate wasm module %s: %w%s", m.opt.Path, err, in.stderr.note())
	}
	in.mod, in.mem = mod, mod.Memory()
	in.input, in.run, in.output = mod.ExportedFunction(ExportInput), mod.ExportedFunction(ExportRun), mod.ExportedFunction(ExportOutput)
	if in.mem == nil {
		mod.Close(ctx)
		return nil, fmt.Errorf("wasm module %s exports no memory", m.opt.Path)
	}
	v, err := in.call(ctx, mod.ExportedFunction(ExportABI))
	if err != nil || int32(v) != ABIVersion {
		mod.Close(ctx)
		return nil, fmt.Errorf("wasm module %s speaks guest ABI %d (%v), this plugin %d: `make build` rebuilds both", m.opt.Path, int32(v), err, ABIVersion)
	}
	return in, nil
}

// call calls f with params, giving its one result.
func (in *Instance) call(ctx context.Context, f api.Function, params ...uint64) (uint64, error) {
	stack := in.stack[:max(len(params), 1)]
	copy(stack, params)
	if err := f.CallWithStack(ctx, stack); err != nil {
		return 0, err
	}
	return stack[0], nil
}
