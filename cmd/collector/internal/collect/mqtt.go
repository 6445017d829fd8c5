package collect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"
)

// MQTT says how to reach the broker.
type MQTT struct {
	Broker   string // tcp://host:port, ssl://host:port (or tls://, mqtts://)
	CAFile   string // CA certificate(s) the broker's certificate is checked against; system roots if empty
	CertFile string // client certificate for mutual TLS (with KeyFile)
	KeyFile  string
	ClientID string // must differ between collectors on one broker
}

// connectRetry is the wait between two first connection attempts.
const connectRetry = 2 * time.Second

// publishTimeout bounds the wait for the broker to take one group's replies.
const publishTimeout = 10 * time.Second

// TLSConfig returns the TLS configuration for m, or nil when m names no CA
// and no client certificate.
func (m MQTT) TLSConfig() (*tls.Config, error) {
	if m.CAFile == "" && m.CertFile == "" && m.KeyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %s: no PEM certificate found", m.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		return nil, errors.New("cert and key: give both for mutual TLS, or neither")
	}
	if m.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(m.CertFile, m.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert %s, key %s: %w", m.CertFile, m.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Run connects to the broker, subscribes to [SubscribeTopic] of Config.ShareGroup and handles
// attestations until ctx is done; it also draws closed batches every
// Config.DrawEvery. It reconnects and resubscribes after a lost
// connection. It returns nil when ctx is done, or the error that stopped it.
func (c *Collector) Run(ctx context.Context, m MQTT) error {
	if c.cfg.Signer == nil {
		return ErrNoSigningKey
	}
	tlsCfg, err := m.TLSConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := newFairQueue()
	fatal := make(chan error, 1)
	// The handler runs on paho's reader goroutine: it queues or drops at
	// once and never blocks (see fairQueue). Messages are still handed
	// over in order (SetOrderMatters), so one device's attestations reach
	// the ledger in the order the broker delivered them.
	onMessage := func(_ mqtt.Client, msg mqtt.Message) {
		in.put(Message{Topic: msg.Topic(), Payload: msg.Payload()})
	}
	log := c.log.With("broker", m.Broker, "client_id", m.ClientID)
	topic := SubscribeTopic(c.cfg.ShareGroup)
	opts := mqtt.NewClientOptions().
		AddBroker(m.Broker).
		SetClientID(m.ClientID).
		SetCleanSession(true). // the agents resend what is not acked
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(time.Second). // few collectors: come back fast, the agents are waiting
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOnConnectHandler(func(cl mqtt.Client) {
			t := cl.Subscribe(topic, 1, onMessage)
			ok := t.WaitTimeout(10 * time.Second)
			err := t.Error()
			switch {
			case !ok:
				err = errors.New("no SUBACK in 10 s")
			case err == nil && subackFailed(t, topic):
				err = errors.New("refused by the broker (SUBACK 0x80): check its ACL and shared-subscription support")
			}
			if err != nil {
				select { // connected but deaf: stop, and let the supervisor restart us
				case fatal <- fmt.Errorf("subscribe %s: %w", topic, err):
				default:
				}
				return
			}
			// Loss announcements (README §C7); without them a gap waits
			// for gap_timeout, so a failure here is logged, not fatal.
			if ht := cl.Subscribe(HealthTopic, 1, onMessage); !ht.WaitTimeout(10*time.Second) || ht.Error() != nil {
				log.Warn("subscribe to health reports failed; gaps wait for gap_timeout", "topic", HealthTopic, "err", ht.Error())
			}
			c.subscribed.Store(true)
			log.Info("connected and subscribed", "topic", topic)
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			c.subscribed.Store(false)
			log.Warn("connection lost, reconnecting", "err", err)
		})
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	client := mqtt.NewClient(opts)
	// Connect, retrying with the reason logged (a TLS or address mistake
	// shows at once); later losses are AutoReconnect's.
	for connected := false; !connected; {
		ct := client.Connect()
		select {
		case <-ct.Done():
			if err := ct.Error(); err != nil {
				log.Warn("broker not reachable, retrying", "err", err, "in", connectRetry)
				select {
				case <-time.After(connectRetry):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			connected = true
		case err := <-fatal:
			client.Disconnect(0)
			return err
		case <-ctx.Done():
			client.Disconnect(0)
			return nil
		}
	}
	defer func() {
		c.subscribed.Store(false)
		client.Disconnect(250)
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.serve(gctx, client, in) })
	g.Go(func() error { return c.drawLoop(gctx) })
	g.Go(func() error {
		select {
		case err := <-fatal:
			return err
		case <-gctx.Done():
			return nil
		}
	})
	return g.Wait()
}

// serve handles the received messages in groups, taken from the devices
// in turn; a group is checked while the one before it commits (Stream).
func (c *Collector) serve(ctx context.Context, client mqtt.Client, in *fairQueue) error {
	var lastDropLog time.Time
	next := func() ([]Message, bool) {
		for {
			select {
			case <-ctx.Done():
				return nil, false
			case <-in.ready:
			}
			if in.len() < c.cfg.MaxGroup {
				select { // let a group fill
				case <-time.After(c.cfg.MaxDelay):
				case <-ctx.Done():
					return nil, false
				}
			}
			// A new slice each time: the group being checked and the one
			// committing are both in use.
			group := in.take(make([]Message, 0, c.cfg.MaxGroup), c.cfg.MaxGroup)
			if len(group) == 0 {
				continue
			}
			if now := time.Now(); now.Sub(lastDropLog) >= dropLogEvery {
				if d := in.takeDropped(); d > 0 {
					c.log.Warn("messages dropped: a device's queue was full (it sends faster than it is answered)", "dropped", d, "per_device", queuePerDevice)
					lastDropLog = now
				}
			}
			return group, true
		}
	}
	c.Stream(next, func(replies []Reply, err error) {
		if err != nil {
			// Nothing stored, nothing answered: the agents send again.
			c.log.Error("group not stored", "err", err)
			return
		}
		c.publish(client, replies)
	})
	return nil
}

// publish signs the replies and publishes them at QoS 1, acks retained
// (README §C2), and waits for the broker to take them.
func (c *Collector) publish(client mqtt.Client, replies []Reply) {
	replies, skipped := limitNacks(replies)
	if skipped > 0 {
		c.log.Debug("nacks not sent: too many for one device in one group", "skipped", skipped)
	}
	tokens := make([]mqtt.Token, 0, len(replies))
	sent := replies[:0]
	for _, r := range replies {
		p, err := SignedPayload(c.cfg.Signer, c.cfg.ChainID, r)
		if err != nil {
			c.log.Error("reply not signed; the device will resend", "topic", r.Topic, "err", err)
			continue
		}
		tokens = append(tokens, client.Publish(r.Topic, 1, r.Ack(), p))
		sent = append(sent, r)
	}
	replies = sent
	deadline := time.Now().Add(publishTimeout)
	for i, t := range tokens {
		if !t.WaitTimeout(time.Until(deadline)) {
			c.log.Warn("reply not taken by the broker in time; the device will resend", "topic", replies[i].Topic)
			continue
		}
		if err := t.Error(); err != nil {
			c.log.Warn("reply not published; the device will resend", "topic", replies[i].Topic, "err", err)
		}
	}
}

func (c *Collector) drawLoop(ctx context.Context) error {
	t := time.NewTicker(c.cfg.DrawEvery)
	defer t.Stop()
	for {
		if _, err := c.DrawClosed(); err != nil {
			c.log.Error("draw", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// subackFailed reports whether the broker refused the subscription (SUBACK
// return code 0x80).
func subackFailed(t mqtt.Token, topic string) bool {
	st, ok := t.(*mqtt.SubscribeToken)
	return ok && st.Result()[topic] == 0x80
}
