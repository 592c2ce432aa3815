package shop

// Total sums prices in cents, with a discount in percent.
func Total(prices []int, discount int) int {
	s := 0
	for _, p := range prices {
		s += p
	}
	return s - s*discount/100
}
