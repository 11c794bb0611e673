package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pilotwire/pilotwire/internal/ca"
)

const caUsage = `Usage: pilotwire ca SUBCOMMAND [flags]

The lab CA that "pilotwire proxy --intercept" signs its certificates with.
Its key stays in the CA directory (--ca-dir, $PILOTWIRE_CA_DIR, or
"pilotwire" in your config directory), readable by you only.

Subcommands:
  init        make the CA (refuses to replace one without --force)
  export      write the CA certificate for a device's trust store (DER, or --pem)
  show        say where the CA is, its name, fingerprint and validity

Run "pilotwire ca SUBCOMMAND --help" for its flags and examples.
`

const caExamples = `  pilotwire ca init
  pilotwire ca export -o pilotwire-root.cer          # then, on the lab device (elevated):
                                                     #   certutil -addstore Root pilotwire-root.cer
  pilotwire ca export --pem -o pilotwire-root.pem    # for curl --cacert and Linux trust stores
  pilotwire ca show
  pilotwire ca init --ca-dir ./lab-ca --force        # a new CA (devices must trust it again)
`

func runCA(_ context.Context, g *globals, args []string) error {
	args, err := takeGlobals(g, args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(g.stderr, caUsage)
		return usagef("ca: no subcommand given (want init, export or show)")
	}
	switch args[0] {
	case "init":
		return runCAInit(g, args[1:])
	case "export":
		return runCAExport(g, args[1:])
	case "show":
		return runCAShow(g, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(g.stdout, caUsage+"\nExamples:\n"+caExamples)
		return nil
	}
	return usagef("ca: unknown subcommand %q (want init, export or show; see pilotwire ca --help)", args[0])
}

// caDirFlag registers --ca-dir on fs; its value, once parsed, is resolved
// by caDir.
func caDirFlag(fs *flag.FlagSet) *string {
	return fs.String("ca-dir", "", "the CA's `DIR` (default $"+ca.EnvDir+", else pilotwire in the user config directory)")
}

// caDir is the CA directory: the flag's, else the default.
func caDir(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	return ca.Dir()
}

func runCAInit(g *globals, args []string) error {
	fs := newFlagSet(g, "ca init", "ca init [flags]", caExamples)
	dirFlag := caDirFlag(fs)
	force := fs.Bool("force", false, "replace an existing CA (devices that trust the old one must trust the new one)")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("ca init: unexpected argument %q", fs.Arg(0))
	}
	dir, err := caDir(*dirFlag)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	c, err := ca.Create(dir, host, time.Now(), *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "pilotwire ca: made %q in %s (key readable by you only)\n", c.String(), dir)
	fmt.Fprintf(g.stderr, "  next: pilotwire ca export -o pilotwire-root.cer, then on the lab device: certutil -addstore Root pilotwire-root.cer\n")
	return nil
}

func runCAExport(g *globals, args []string) error {
	fs := newFlagSet(g, "ca export", "ca export -o FILE [flags]", caExamples)
	dirFlag := caDirFlag(fs)
	out := fs.String("o", "", "write the certificate to `FILE` (- for standard output)")
	asPEM := fs.Bool("pem", false, "PEM instead of DER")
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("ca export: unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("ca export: -o FILE is required (e.g. -o pilotwire-root.cer)")
	}
	dir, err := caDir(*dirFlag)
	if err != nil {
		return err
	}
	c, err := ca.Load(dir)
	if err != nil {
		return err
	}
	data := c.DER()
	if *asPEM {
		data = c.PEM()
	}
	if *out == "-" {
		_, err := g.stdout.Write(data)
		return err
	}
	// Only the certificate: public, readable by all.
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("ca export: %w", err)
	}
	fmt.Fprintf(g.stderr, "pilotwire ca: wrote %q to %s\n", c.String(), *out)
	return nil
}

func runCAShow(g *globals, args []string) error {
	fs := newFlagSet(g, "ca show", "ca show [flags]", caExamples)
	dirFlag := caDirFlag(fs)
	if err := parseFlags(g, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("ca show: unexpected argument %q", fs.Arg(0))
	}
	dir, err := caDir(*dirFlag)
	if err != nil {
		return err
	}
	c, err := ca.Load(dir)
	if errors.Is(err, ca.ErrNoCA) {
		return emptyf("no CA in %s (pilotwire ca init makes one)", dir)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "name:        %s\n", c.String())
	fmt.Fprintf(g.stdout, "directory:   %s\n", dir)
	fmt.Fprintf(g.stdout, "sha256:      %s\n", c.Fingerprint())
	fmt.Fprintf(g.stdout, "valid:       %s to %s\n", c.Cert.NotBefore.UTC().Format(time.RFC3339), c.Cert.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(g.stdout, "trust it:    pilotwire ca export -o pilotwire-root.cer; on the device: certutil -addstore Root pilotwire-root.cer\n")
	return nil
}
