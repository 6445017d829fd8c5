//go:build !unix

package signer

// openNonBlock is 0 where FIFOs cannot block an open.
const openNonBlock = 0
