// Command lanyard-agent is the Lanyard device agent. See agent/cli.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/lanyardhq/lanyard/agent/cli"
)

func main() {
	if err := cli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lanyard-agent:", err)
		os.Exit(1)
	}
}
