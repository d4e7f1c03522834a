// Command lanyardctl is the IT admin's client of the Lanyard REST API.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/lanyardhq/lanyard/cmd/lanyardctl/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := cli.Run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lanyardctl: "+cli.Esc(strings.Join(strings.Fields(err.Error()), " ")))
		os.Exit(1)
	}
}
