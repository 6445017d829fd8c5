// Package fleettest holds the fleet's reliability test: collector
// processes side by side on a real PostgreSQL and a real mosquitto, one
// of them killed and the database restarted while 50 devices attest. It
// has no code of its own beyond the test.
package fleettest
