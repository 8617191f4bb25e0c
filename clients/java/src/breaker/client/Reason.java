package breaker.client;

/**
 * The winning latch of a slot's effective scope: for the engine's own
 * reject messages. {@code scope} says who holds it (GLOBAL, GROUP with its
 * {@code scopeName} "venue:XETR", STRATEGY, or NONE when ACTIVE);
 * {@code scopeSlot} is the group or strategy slot, -1 otherwise.
 */
public record Reason(Mode mode, int reasonCode, String reasonName, long actorUid,
                     long sinceWallNs, Scope scope, int scopeSlot, String scopeName) {
    public enum Scope { NONE, GLOBAL, GROUP, STRATEGY }
}
