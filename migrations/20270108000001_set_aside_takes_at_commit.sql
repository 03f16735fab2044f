-- A flash sale's units leave its set-aside at COMMIT (shop::inventory's
-- set_aside::take_in). Every order of a sale moves units out of the same
-- two rows (the set-aside in inventory_reservations and the SKU's
-- inventory row), and each order holds their locks until it ends. Taken
-- by a statement before the COMMIT, those locks spanned two round trips
-- to the application; on a loaded machine each costs milliseconds of
-- scheduling, and the 50,000-shopper benchmark confirmed no more than
-- ~200 orders a second whatever the concurrency (BENCHMARKS.md). A take
-- recorded here is applied by a deferred trigger inside the COMMIT, so the
-- rows stay locked only while the server commits.
--
-- A row lives only inside its transaction: the trigger deletes it.
CREATE TABLE inventory_set_aside_takes (
    id       bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token    uuid    NOT NULL,
    sku_id   uuid    NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0)
);

-- The set-aside row first, then the SKU's row: the order every DB-path
-- change keeps. A set-aside short of the units (what keeps a sale from
-- selling more than it set aside) fails the COMMIT with SQLSTATE MS001;
-- a SKU holding fewer units than its set-aside (a broken invariant) with
-- MS002.
CREATE FUNCTION inventory_apply_set_aside_take() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inventory_reservations
       SET lines = jsonb_build_array(jsonb_build_object('sku_id', NEW.sku_id, 'quantity', (lines->0->>'quantity')::int - NEW.quantity))
     WHERE token = NEW.token AND (lines->0->>'sku_id')::uuid = NEW.sku_id AND (lines->0->>'quantity')::int - NEW.quantity >= 0;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'set-aside % has fewer than % units of SKU % left', NEW.token, NEW.quantity, NEW.sku_id USING ERRCODE = 'MS001';
    END IF;
    UPDATE inventory SET held = held - NEW.quantity, reserved = reserved + NEW.quantity, version = version + 1, updated_at = now()
     WHERE sku_id = NEW.sku_id AND held >= NEW.quantity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'SKU % holds fewer units than its set-aside %', NEW.sku_id, NEW.token USING ERRCODE = 'MS002';
    END IF;
    DELETE FROM inventory_set_aside_takes WHERE id = NEW.id;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER inventory_set_aside_take_at_commit
    AFTER INSERT ON inventory_set_aside_takes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION inventory_apply_set_aside_take();
