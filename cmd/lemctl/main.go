// Command lemctl measures what LLM inference costs. All of its logic lives in host/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lemctl/lemctl/host/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Stdin, os.Stdout, os.Stderr, os.Args[1:])
	stop()
	os.Exit(code)
}
