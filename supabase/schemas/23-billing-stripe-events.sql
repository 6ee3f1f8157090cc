-- Billing: the entry points of the Stripe sync: private.handle_stripe_event(), private.replay_stripe_event() and
-- the operators' view of events that fail (public.billing_sync_problems); which failures are permanent.

-- Whether a failure will fail the same way on every retry. Transient: a lock wait that timed out (55P03), a
-- serialization failure or deadlock (class 40), a lost connection (class 08), insufficient resources (class 53),
-- a cancel or shutdown (class 57) and system errors (class 58): a retry can succeed, so Stripe keeps retrying.
-- Everything else is permanent: data errors (class 22, including the handler's own 22023 for shapes it cannot use),
-- integrity violations (class 23), and any other error, which only a change of code or data can cure; those end
-- as a problem after a bounded number of attempts instead of failing for Stripe's three days of retries.
create function private.stripe_failure_is_permanent(sqlstate text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select not (sqlstate = '55P03' or left(sqlstate, 2) in ('08', '40', '53', '57', '58'))
$$;
comment on function private.stripe_failure_is_permanent(text) is 'true for an SQLSTATE a retry cannot cure (classes 22, 23 and anything not transient); false for 55P03 and classes 08, 40, 53, 57, 58.';

create function private.stripe_max_attempts() returns integer
language sql immutable parallel safe
set search_path = ''
as $$
  select 5
$$;
comment on function private.stripe_max_attempts() is 'Attempts after which an event that keeps failing permanently is kept as a problem and answered 200.';

-- Which apply function an event type goes to; a type the mirror does not use is ignored.
create function private.apply_stripe_event(event_type text, object jsonb, event_created timestamptz) returns text
language plpgsql
set search_path = ''
as $$
begin
  return case
    when event_type = 'checkout.session.completed' then private.apply_stripe_checkout_session(object)
    when event_type in ('customer.created', 'customer.updated', 'customer.deleted')
      then private.apply_stripe_customer(object, event_created, event_type)
    when event_type in ('customer.subscription.created', 'customer.subscription.updated',
                        'customer.subscription.deleted', 'customer.subscription.paused',
                        'customer.subscription.resumed', 'customer.subscription.trial_will_end',
                        'customer.subscription.pending_update_applied', 'customer.subscription.pending_update_expired')
      then private.apply_stripe_subscription(object, event_created, event_type)
    when event_type in ('invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded',
                        'invoice.payment_failed', 'invoice.payment_action_required', 'invoice.voided',
                        'invoice.marked_uncollectible', 'invoice.updated', 'invoice.sent', 'invoice.overdue')
      then private.apply_stripe_invoice(object, event_created, event_type)
    when event_type in ('product.created', 'product.updated', 'product.deleted')
      then private.apply_stripe_product(object, event_created, event_type)
    when event_type in ('price.created', 'price.updated', 'price.deleted')
      then private.apply_stripe_price(object, event_created, event_type)
    -- Legacy plans are prices with the same ids (plan.deleted deletes the price).
    when event_type in ('plan.created', 'plan.updated', 'plan.deleted')
      then private.apply_stripe_price(private.stripe_plan_as_price(object), event_created,
                                      'price.' || pg_catalog.split_part(event_type, '.', 2))
    else 'ignored'
  end;
end;
$$;
comment on function private.apply_stripe_event(text, jsonb, timestamptz) is 'Applies one Stripe object by event type: applied, stale or ignored (type not used); raises on what cannot be applied.';

-- Applies a locked ledger row's event in a subtransaction and records the attempt: on failure its partial writes
-- are rolled back and the ledger keeps the payload, the error and its SQLSTATE; a permanent failure at the last
-- allowed attempt (or one that is already a problem) becomes a problem. Shared by delivery and replay.
create function private.attempt_stripe_event(event jsonb, previous_outcome text, replay boolean) returns private.stripe_events
language plpgsql
set search_path = ''
as $$
declare
  event_id text := event ->> 'id';
  result_outcome text;
  failure text;
  failure_state text;
  recorded private.stripe_events;
begin
  begin
    result_outcome := private.apply_stripe_event(event ->> 'type', event -> 'data' -> 'object',
                                                 private.stripe_time(event -> 'created'));
  exception when others then
    result_outcome := 'failed';
    failure_state := sqlstate;
    failure := left(sqlstate || ': ' || sqlerrm, 1000);
  end;

  update private.stripe_events e set
    outcome = case
      when result_outcome <> 'failed' then result_outcome
      when previous_outcome = 'problem' then 'problem'
      when private.stripe_failure_is_permanent(failure_state) and e.attempts + 1 >= private.stripe_max_attempts()
        then 'problem'
      else 'failed'
    end,
    error = failure,
    sqlstate = failure_state,
    attempts = e.attempts + 1,
    processed_at = pg_catalog.now(),
    payload = case when result_outcome = 'failed' then event end,
    replayed_at = case when replay and result_outcome <> 'failed' then pg_catalog.now() else e.replayed_at end
  where e.id = event_id
  returning e.* into recorded;
  return recorded;
end;
$$;
comment on function private.attempt_stripe_event(jsonb, text, boolean) is 'One attempt at a ledger row''s event: applies it or records the failure (failed, or problem once permanent at the last attempt).';

-- The one entry point of the stripe-webhook function, called with the verified event in its own transaction.
-- Exactly once: the ledger row is inserted (or found) and locked first, so concurrent deliveries of one event
-- queue here and all but the first find it processed. An event kept as a problem is attempted again when Stripe
-- delivers it again (a resend from the Dashboard), and answered 200 whatever happens.
create function private.handle_stripe_event(event jsonb) returns jsonb
language plpgsql
set search_path = ''
-- A wait for a lock ends as an error the handler records (failed, transient) rather than running into the caller's
-- statement timeout, which would roll the ledger row back with everything else.
set lock_timeout = '10s'
as $$
declare
  event_id text := event ->> 'id';
  event_type text := event ->> 'type';
  event_created timestamptz := private.stripe_time(event -> 'created');
  object jsonb := event -> 'data' -> 'object';
  ledger private.stripe_events;
begin
  if event_id is null or event_type is null or event_created is null or jsonb_typeof(object) is distinct from 'object' then
    raise exception 'not a Stripe event: id, type, created and data.object are required'
      using errcode = '22023', hint = 'Pass the verified event JSON exactly as Stripe sent it.';
  end if;

  insert into private.stripe_events (id, type, api_version, created, livemode, object_type, object_id)
  values (event_id, event_type, event ->> 'api_version', event_created,
          case when jsonb_typeof(event -> 'livemode') = 'boolean' then (event ->> 'livemode')::boolean else false end,
          object ->> 'object', object ->> 'id')
  on conflict on constraint stripe_events_pkey do nothing;
  select e.* into ledger from private.stripe_events e where e.id = event_id for update;
  if ledger.outcome in ('applied', 'ignored', 'stale') then
    return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome,
                              'duplicate', true, 'attempts', ledger.attempts);
  end if;

  ledger := private.attempt_stripe_event(event, ledger.outcome, false);
  return jsonb_build_object('event_id', event_id, 'type', event_type, 'outcome', ledger.outcome, 'duplicate', false,
                            'attempts', ledger.attempts, 'error', ledger.error, 'sqlstate', ledger.sqlstate);
end;
$$;
comment on function private.handle_stripe_event(jsonb) is 'Applies one verified Stripe event exactly once: {event_id, type, outcome, duplicate, attempts, error, sqlstate}. outcome failed means answer 500 (Stripe retries); problem means answer 200 (kept for replay).';

-- Applies a kept event again once its cause is fixed (a missing parent delivered, a code fix deployed). The event
-- is applied by the same rules as a delivery, so a replay that comes after newer events is stale, not a rollback.
create function private.replay_stripe_event(event_id text) returns jsonb
language plpgsql
security definer
set search_path = ''
set lock_timeout = '10s'
as $$
declare
  ledger private.stripe_events;
begin
  select e.* into ledger from private.stripe_events e where e.id = replay_stripe_event.event_id for update;
  if not found then
    raise exception 'no Stripe event % in the ledger', event_id using errcode = 'P0002',
      hint = 'The id is the event''s evt_... id; retention removes events after 90 days.';
  end if;
  if ledger.outcome not in ('failed', 'problem') or ledger.payload is null then
    raise exception 'Stripe event % is not kept for replay (outcome %)', event_id, coalesce(ledger.outcome, 'none')
      using errcode = '55000', hint = 'Only failed events and problems (public.billing_sync_problems) can be replayed.';
  end if;

  ledger := private.attempt_stripe_event(ledger.payload, ledger.outcome, true);
  return jsonb_build_object('event_id', ledger.id, 'type', ledger.type, 'outcome', ledger.outcome, 'replayed', true,
                            'attempts', ledger.attempts, 'error', ledger.error, 'sqlstate', ledger.sqlstate);
end;
$$;
comment on function private.replay_stripe_event(text) is 'Operators: applies a failed or problem event again from its kept payload: {event_id, type, outcome, replayed, attempts, error, sqlstate}; a success clears the payload.';

grant execute on function private.replay_stripe_event(text) to service_role;

-- What operators look at: every event that is failing. kept: a permanent failure answered 200, which only a
-- replay (private.replay_stripe_event) applies; retrying: answered 500, Stripe delivers it again; stalled: answered
-- 500, but Stripe's retries (three days in live mode) are over, so it too needs a replay.
create view public.billing_sync_problems with (security_invoker = true) as
select
  e.id as event_id,
  e.type,
  e.object_type,
  e.object_id,
  e.api_version,
  e.livemode,
  e.created,
  e.received_at,
  e.processed_at as last_attempt_at,
  e.attempts,
  case when e.outcome = 'problem' then 'kept'
       when e.received_at > pg_catalog.now() - interval '3 days' then 'retrying'
       else 'stalled' end as state,
  private.stripe_failure_is_permanent(e.sqlstate) as permanent,
  e.sqlstate,
  e.error,
  e.payload
from private.stripe_events e
where e.outcome in ('failed', 'problem');
comment on view public.billing_sync_problems is 'Operators (service role): Stripe events that fail. state kept: given up after 5 permanent failures (answered 200), replay with private.replay_stripe_event(event_id); retrying: Stripe retries it; stalled: Stripe''s 3 days of retries are over, replay it.';

grant execute on function private.stripe_failure_is_permanent(text) to service_role;
grant select on public.billing_sync_problems to service_role;
