// Command pcapread runs pilotwire's pcap reader over capture files and
// prints how many flows, ClientHellos (flows with an SNI) and skipped
// packets it found, and how long it took. bench/pcap/run.sh times it
// against tshark; -v prints every flow, one line each, for checking by eye.
// With -make it instead builds the large benchmark capture from the
// Ethernet captures given.
//
//	go run ./bench/pcap [-v] FILE...
//	go run ./bench/pcap -make bench/out/big.pcap -size 400 CAPTURE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pilotwire/pilotwire/internal/flow"
	"github.com/pilotwire/pilotwire/internal/importer/pcap"
)

func main() {
	verbose := flag.Bool("v", false, "print every flow")
	makeOut := flag.String("make", "", "write a large capture to this file, repeating the captures given")
	sizeMiB := flag.Int64("size", 400, "with -make: size of the capture in MiB")
	flag.Parse()
	if *makeOut != "" {
		if err := makeBig(*makeOut, *sizeMiB<<20, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "pcapread:", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: pcapread [-v] FILE...")
		os.Exit(2)
	}
	exit := 0
	for _, name := range flag.Args() {
		if err := run(name, *verbose); err != nil {
			fmt.Fprintln(os.Stderr, "pcapread:", err)
			exit = 1
		}
	}
	os.Exit(exit)
}

func run(name string, verbose bool) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	var flows, snis, skipped int
	began := time.Now()
	err = pcap.Read(context.Background(), f, func(fl flow.Flow) error {
		flows++
		if fl.SNI != "" {
			snis++
		}
		if verbose {
			fmt.Printf("%s %s %-7s %s:%d %s %s %q st=%d sni=%q alpn=%q tls=%q up=%d down=%d %s-%s note=%q err=%q\n",
				fl.Key, fl.Client, fl.Kind, fl.Host, fl.Port, fl.Method, fl.URL, "", fl.Status, fl.SNI, fl.ALPN, fl.TLSVersion,
				fl.BytesUp, fl.BytesDown, fl.Start.Format("15:04:05.000000"), fl.End.Format("15:04:05.000000"), fl.Note, fl.Error)
		}
		return nil
	}, func(where string, err error) {
		skipped++
		if verbose {
			fmt.Printf("skip %s: %v\n", where, err)
		}
	})
	took := time.Since(began)
	fmt.Printf("%s: %d flows, %d with SNI, %d packets skipped, %.3fs, %.0f MiB/s\n",
		name, flows, snis, skipped, took.Seconds(), float64(size)/(1<<20)/took.Seconds())
	return err
}
