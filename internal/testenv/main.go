package testenv

import (
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// RunMain starts one environment for a whole test binary, hands it to use
// (typically to set a package variable), runs the tests and tears the
// environment down. Call it from TestMain:
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) {
//		os.Exit(testenv.RunMain(m, testenv.Options{}, func(e *testenv.Env) { env = e }))
//	}
//
// Starting one control plane per binary instead of one per test saves ~5 s
// per test; tests then share the cluster and must use their own namespaces
// and revision names. If the environment cannot start, RunMain prints why
// and returns 1 without running the tests. Process logs are printed when the
// tests fail.
func RunMain(m *testing.M, opts Options, use func(*Env)) int {
	tb := &mainTB{name: "TestMain"}
	code := func() int {
		defer tb.cleanup()
		env, err := Start(tb, opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			tb.failed = true
			return 1
		}
		use(env)
		code := m.Run()
		if code != 0 {
			tb.failed = true
		}
		return code
	}()
	if tb.failed && code == 0 {
		code = 1
	}
	return code
}

// mainTB is the testing.TB of an environment that outlives single tests.
// Only the methods the environment calls are implemented; the embedded nil
// interface supplies the unexported one.
type mainTB struct {
	testing.TB
	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	// out receives log lines; nil means standard error.
	out io.Writer
}

func (t *mainTB) Helper()      {}
func (t *mainTB) Name() string { return t.name }
func (t *mainTB) Logf(format string, args ...any) {
	if t.out != nil {
		t.printf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (t *mainTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
	fmt.Fprintf(os.Stderr, "ERROR: "+format+"\n", args...)
}

func (t *mainTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *mainTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *mainTB) cleanup() {
	t.mu.Lock()
	cs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}
