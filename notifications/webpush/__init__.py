"""
Web Push: an inbox event reaches the devices of users who have no page open.

The browser subscribes a device with its push service (the widget's push.js) and gives the
subscription to the site (views.push_subscriptions, subscriptions.py). When an inbox event is
published, one relay (a Redis consumer group, wsserver/push.py) decides who gets it
(recipients.py: push on, not muted, no socket open, under the rate limit) and POSTs it, encrypted
for each device (RFC 8291) and signed with the site's VAPID key (RFC 8292, vapid.py), to each
subscription's push service (sending.py); the service worker (static notifications/sw.js) shows
it. Nothing is pushed while the VAPID keys are not set.

pywebpush does the encryption and the signing: both are easy to get subtly wrong, and it is the
implementation the push services' own documentation points to.
"""
