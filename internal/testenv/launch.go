package testenv

import (
	"fmt"
	"io"
)

// Launch starts an environment outside of a test, for the example programs
// and `make demo`. Progress lines go to log. Call stop when done: it stops
// every process and removes the temporary directory. Like Start, it refuses
// to run in the host's network namespace.
func Launch(opts Options, log io.Writer) (env *Env, stop func(), err error) {
	tb := &mainTB{name: "launch", out: log}
	env, err = Start(tb, opts)
	if err != nil {
		tb.cleanup()
		return nil, nil, err
	}
	return env, tb.cleanup, nil
}

func (t *mainTB) printf(format string, args ...any) {
	if t.out != nil {
		fmt.Fprintf(t.out, format+"\n", args...)
	}
}
