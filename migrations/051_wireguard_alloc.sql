-- 051_wireguard_alloc: allocation in O(log n). 050's secumon_wg_free_address always searched the lowest gap,
-- one pass over every address allocated in the pool, so enrolling the n-th agent cost O(n) (5,000 agents:
-- 42 s). Now the next address after the highest one allocated comes first (an index probe); the gap search
-- runs only once the pool's end is reached. A side benefit: a deleted agent's address is not handed out again
-- until the pool wraps, so a stale device config does not collide with a new agent at once.
CREATE OR REPLACE FUNCTION secumon_wg_free_address(p_pool cidr) RETURNS inet
  LANGUAGE sql STABLE
  AS $$
  WITH used AS (
    SELECT address AS a FROM wireguard_addresses WHERE address << p_pool
    UNION ALL
    SELECT set_masklen(address, 32) FROM wireguard_server WHERE set_masklen(address, 32) << p_pool
  ),
  top AS (
    SELECT greatest(
      (SELECT address FROM wireguard_addresses WHERE address << p_pool ORDER BY address DESC LIMIT 1),
      (SELECT set_masklen(address, 32) FROM wireguard_server WHERE set_masklen(address, 32) << p_pool)
    ) AS a
  ),
  next AS (
    SELECT t.a + 1 AS a FROM top t
    WHERE t.a IS NOT NULL AND t.a < set_masklen(broadcast(p_pool), 32) - 1
  )
  SELECT a FROM next
  UNION ALL
  SELECT * FROM (
    SELECT c.a
    FROM (
      SELECT set_masklen(network(p_pool)::inet, 32) + 1 AS a
      UNION ALL
      SELECT a + 1 FROM used
    ) c
    WHERE NOT EXISTS (SELECT 1 FROM next)
      AND c.a << p_pool
      AND c.a < set_masklen(broadcast(p_pool), 32)
      AND NOT EXISTS (SELECT 1 FROM used u WHERE u.a = c.a)
    ORDER BY c.a
    LIMIT 1
  ) gap
  LIMIT 1
$$;
