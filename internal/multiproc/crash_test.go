package multiproc

import "testing"

// A crash report is read as out of memory by its first frame under
// runtime.throw, or by a fatal error line that says so; a panic's or
// another throw's is not.
func TestOutOfMemory(t *testing.T) {
	for _, c := range []struct {
		name, report string
		oom          bool
	}{
		{"arena metadata (RLIMIT_DATA, Go 1.26)", "\nruntime stack:\nruntime.throw({0x4b403e?, 0x4000000?})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x48 fp=0x1 sp=0x2 pc=0x3\n" +
			"runtime.(*mheap).sysAlloc(0x564d80, 0x8000000?, 0x574f88, 0x574fb0)\n\t/usr/local/go/src/runtime/malloc.go:884 +0x32d\n", true},
		{"mmap refused", "runtime stack:\nruntime.throw({0x9?, 0x1?})\n\tpanic.go:1229\nruntime.sysMapOS(0x1, 0x2, {0x3, 0x4})\n\tmem_linux.go:175\n", true},
		{"fatal error line", "fatal error: runtime: out of memory\n", true},
		{"another throw", "runtime stack:\nruntime.throw({0x9?, 0x1?})\n\tpanic.go:1229\nruntime.mapassign_faststr(0x1)\n\tmap.go:1\n", false},
		{"a panic", "panic: injected fault: fib 13\n\ngoroutine 7 [running]:\nmain.main()\n\tmain.go:3\n", false},
		{"nothing", "", false},
	} {
		if got := outOfMemory(c.report); (got != "") != c.oom {
			t.Errorf("%s: outOfMemory = %q, want out of memory %v", c.name, got, c.oom)
		}
	}
}
