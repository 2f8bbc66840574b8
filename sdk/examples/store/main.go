// Command lem-plugin-example-store is the sdk's example result repository: exact bytes in files
// under one directory, every write atomic (temp file, fsync, rename). It is the smallest complete
// repository plugin to copy from; lemctl's own is plugins/fsstore. See ../README.md.
package main

import "github.com/lemctl/lemctl/sdk"

func main() { sdk.Serve(newPlugin()) }
