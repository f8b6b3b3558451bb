package session

// ring is a FIFO of deliveries in a growable circular buffer, so that a busy queue
// neither allocates per message nor keeps shifting.
type ring struct {
	buf  []Delivery
	head int
	n    int
}

func (r *ring) len() int { return r.n }

func (r *ring) push(d Delivery) {
	if r.n == len(r.buf) {
		size := max(8, 2*len(r.buf))
		nb := make([]Delivery, size)
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = d
	r.n++
}

func (r *ring) peek() *Delivery { return &r.buf[r.head] }

// at returns the i-th delivery from the front.
func (r *ring) at(i int) *Delivery { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) pop() Delivery {
	d := r.buf[r.head]
	r.buf[r.head] = Delivery{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 && len(r.buf) > 64 {
		r.buf, r.head = nil, 0 // give back the memory of a burst
	}
	return d
}

// filter keeps, in order, the deliveries for which keep is true and returns the others.
func (r *ring) filter(keep func(*Delivery) bool) []Delivery {
	var out []Delivery
	n := r.n
	var kept ring
	for i := 0; i < n; i++ {
		d := r.pop()
		if keep(&d) {
			kept.push(d)
		} else {
			out = append(out, d)
		}
	}
	*r = kept
	return out
}
