// Command floor uses, minimally, every library tboxd is required to link:
// its stripped size is the floor under tboxd's size, the part no change in
// this repository's own code can remove. benchtable builds it beside
// tboxd; it is never run.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.bug.st/serial"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/sha3"
)

func main() {
	flag.Parse()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	// MQTT over mutual TLS (the uplink).
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(flag.Arg(0)))
	cert, err := tls.LoadX509KeyPair(flag.Arg(1), flag.Arg(2))
	log.Info("cert", "err", err)
	opts := mqtt.NewClientOptions().AddBroker(flag.Arg(3)).
		SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}})
	c := mqtt.NewClient(opts)
	c.Connect().Wait()
	c.SubscribeMultiple(map[string]byte{"r": 1}, nil).Wait()
	c.Publish("t", 1, false, []byte("x")).Wait()

	// secp256k1 and Keccak-256 (the signer).
	k, _ := secp256k1.GeneratePrivateKey()
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(flag.Arg(4)))
	sig65 := ecdsa.SignCompact(k, h.Sum(nil), false)
	pub, _, _ := ecdsa.RecoverCompact(sig65, h.Sum(nil))
	os.Stdout.Write(pub.SerializeUncompressed())

	// JSON (the wire form), TOML (the configuration). The DBC file is read
	// by tboxd's own reader (agent/profile), so it is tboxd's code: no DBC
	// library here.
	var v map[string]any
	json.Unmarshal([]byte(flag.Arg(4)), &v)
	b, _ := json.Marshal(v)
	os.Stdout.Write(b)
	var conf struct {
		Profile string
		CAN     []struct{ Interface string }
	}
	toml.Decode(flag.Arg(4), &conf)

	// bbolt (the outbox), a serial port (the diagnostic shell).
	db, _ := bolt.Open(flag.Arg(5), 0o600, nil)
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists([]byte("a"))
		return b.Put([]byte("k"), []byte("v"))
	})
	port, _ := serial.Open(flag.Arg(6), &serial.Mode{BaudRate: 115200})
	port.Write([]byte("x"))

	// sd_notify (the systemd unit's readiness and watchdog).
	daemon.SdNotify(false, daemon.SdNotifyReady)
	<-sig
}
