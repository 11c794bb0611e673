package timeline

import "fmt"

// FormatBytes prints a byte count the way people read it: 512 B, 1.5 KiB,
// 3.2 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// FormatRate prints a throughput in bytes per second: "4.2 MiB/s".
func FormatRate(bps float64) string {
	if bps < 0 || bps != bps {
		bps = 0
	}
	if bps > 1<<62 {
		bps = 1 << 62
	}
	return FormatBytes(int64(bps)) + "/s"
}
