// Command lem-plugin-fsstore is lemctl's repository plugin for files on disk (package store).
package main

import (
	"github.com/lemctl/lemctl/plugins/fsstore/store"
	"github.com/lemctl/lemctl/sdk"
)

func main() { sdk.Serve(store.NewPlugin()) }
