// A tiny program built twice, byte for byte, by recipes/go-hello/go-hello.repro.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("hello from a reproducible Go build (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
