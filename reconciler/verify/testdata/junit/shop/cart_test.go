package shop

import (
	"os"
	"testing"
)

func TestTotalEmpty(t *testing.T) {
	if got := Total(nil, 0); got != 0 {
		t.Fatalf("Total(nil) = %d", got)
	}
}

func TestTotalSums(t *testing.T) {
	if got := Total([]int{100, 250}, 0); got != 350 {
		t.Fatalf("Total = %d, want 350", got)
	}
}

func TestTotalDiscount(t *testing.T) {
	want := 90
	if os.Getenv("SHOP_BUG") != "" {
		want = 85
	}
	if got := Total([]int{100}, 10); got != want {
		t.Fatalf("Total with 10%% discount = %d, want %d", got, want)
	}
}

func TestTotalRounding(t *testing.T) {
	if os.Getenv("SHOP_BUG") != "" {
		t.Errorf("rounding of 33%% off 100 is %d, want 67", Total([]int{100}, 33)+1)
	}
}

func TestTotalCurrency(t *testing.T) {
	t.Skip("currencies are not supported yet")
}
