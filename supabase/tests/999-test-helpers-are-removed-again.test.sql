-- The last file: removes the `tests` schema that 000 committed, so running the suite against a shared database
-- (e.g. `supabase test db --linked`) leaves no test helpers behind. pgTAP itself stays installed in `extensions`.
begin;
select plan(1);
set local client_min_messages = warning;
drop schema tests cascade;
select hasnt_schema('tests', 'the test helpers are gone after the suite');
select * from finish();
commit;
