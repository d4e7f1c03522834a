// Command lanyard is the control plane: serve, migrate, version and admin helpers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		// One line, whatever the driver's error looks like: operators grep logs.
		fmt.Fprintln(os.Stderr, "lanyard: "+strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}
