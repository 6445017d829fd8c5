package uplink

import (
	"context"
	"time"

	"github.com/csop/tbox/signer"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// retainedGrace is how long FetchReceipt waits for the retained receipt
// after the SUBACK.
const retainedGrace = 500 * time.Millisecond

// FetchReceipt connects once, subscribes to the device's ack topic and
// returns the collector's retained receipt, verified like any ack (size,
// wire form, a signature by one of cfg.Collectors for this device), with
// its wire form; nil when none came within wait. A reflashed device (its
// key kept, its state lost) learns there where its chain stands. It does
// not check the digest: the device has no record of it.
func FetchReceipt(ctx context.Context, cfg Config, wait time.Duration) (*signer.Receipt, []byte, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, nil, err
	}
	if len(r.Collectors) == 0 {
		return nil, nil, cfgErr("collector_addresses", "", ErrCollectors, nil, "missing")
	}
	dev, err := signer.ParseAddress(r.Device)
	if err != nil {
		return nil, nil, cfgErr("device", r.Device, ErrDevice, err, "not an address")
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, ackT, _, _ := Topics(r.Device)
	type got struct {
		rc   *signer.Receipt
		wire []byte
		err  error
	}
	res := make(chan got, 1)
	o := mqtt.NewClientOptions().AddBroker(r.Broker).SetClientID(r.Device).SetProtocolVersion(4).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(wait).SetWriteTimeout(wait)
	if r.tls != nil {
		o.SetTLSConfig(r.tls.Clone())
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, nil, errorf("fetch receipt: connect %s: %w", r.Broker, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, nil, errorf("fetch receipt: connect %s: %w", r.Broker, err)
	}
	defer c.Disconnect(0)
	// SubscribeMultiple, as the uplink's session subscribes: Subscribe
	// would link a second copy of paho's subscription code (5 KiB).
	st := c.SubscribeMultiple(map[string]byte{ackT: 1}, func(_ mqtt.Client, m mqtt.Message) {
		if !m.Retained() {
			return
		}
		rc, _, _, err := checkReply(m.Payload(), false, dev, r.ChainID, r.Collectors)
		select {
		case res <- got{rc, m.Payload(), err}:
		default:
		}
	})
	// A broker sends the retained message right after the SUBACK: once
	// the SUBACK is in, a short grace is enough.
	var grace <-chan time.Time
	select {
	case <-st.Done():
		grace = time.After(retainedGrace)
	case g := <-res:
		res <- g
	case <-ctx.Done():
		return nil, nil, nil
	}
	select {
	case <-grace:
		return nil, nil, nil
	case g := <-res:
		if g.err != nil {
			return nil, nil, errorf("fetch receipt: retained ack ignored: %w", g.err)
		}
		return g.rc, g.wire, nil
	case <-ctx.Done():
		return nil, nil, nil
	}
}
