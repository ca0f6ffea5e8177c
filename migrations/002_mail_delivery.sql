-- Mail is never dropped silently (issue 20).
--
-- outbox.failure is the class of the last failed attempt: 'temporary'
-- (SMTP down, 4xx), 'configuration' (authentication, TLS or policy refused:
-- kept queued and retried once an admin fixed it) or 'refused' (a recipient
-- the server does not know: the only failure that ends a mail, state
-- 'failed').
ALTER TABLE outbox ADD COLUMN failure text CHECK (failure IN ('temporary', 'configuration', 'refused'));

-- dedup_key makes an enqueue idempotent: a report mail is keyed by report
-- version and channel, so that a retry after a crash finds the mail queued
-- before it instead of mailing the report twice.
ALTER TABLE outbox ADD COLUMN dedup_key text;
CREATE UNIQUE INDEX outbox_dedup_key ON outbox (dedup_key);

-- Mails given up before this version for an authentication, TLS or policy
-- refusal were never delivered: queue the report mails again, and the alert
-- mails of the last week (older alerts would only confuse; they stay failed,
-- their failure unknown). Unknown recipients and unbuildable messages stay
-- failed, as refused.
UPDATE outbox SET failure = 'refused'
 WHERE state = 'failed'
   AND (coalesce(last_error, '') LIKE '%: recipient refused (5%' OR coalesce(last_error, '') LIKE '%: message invalid%');
UPDATE outbox SET state = 'queued', failure = 'configuration', next_attempt = now(), lease_until = NULL
 WHERE state = 'failed' AND failure IS NULL
   AND (kind = 'report' OR created_at > now() - interval '7 days');

-- Claims of alert mails sent outside the outbox (straight to SMTP when the
-- alert cannot be queued): the daemon whose INSERT wins sends, the others do
-- not, so that several daemons on one database send one mail.
CREATE TABLE mail_claims (
    key        text PRIMARY KEY,
    claimed_at timestamptz NOT NULL,
    owner      text NOT NULL DEFAULT ''
);
