// Tab leadership: all tabs of a browser share ONE stream. The tab holding a Web Lock is the
// leader, opens the EventSource and relays what it receives to the other tabs over a
// BroadcastChannel; when it closes, the next tab waiting on the lock takes over at once.

export class Tabs {
  /**
   * @param {string} name the lock's and the channel's name (one per tidings server)
   * @param {boolean} share whether the client may share (the `share` option)
   * @param {(message: any) => void} onMessage what another tab posted
   */
  constructor(name, share, onMessage) {
    const g = globalThis;
    this.name = name;
    /** Whether this browser can share (BroadcastChannel and Web Locks) and the client may. */
    this.shared = Boolean(
      share && typeof g.BroadcastChannel === "function" && g.navigator?.locks?.request,
    );
    /** @type {BroadcastChannel | null} */
    this._channel = null;
    if (this.shared) {
      this._channel = new g.BroadcastChannel(name);
      this._channel.onmessage = (e) => onMessage(e.data);
    }
    /** @type {(() => void) | null} */
    this._release = null;
    /** @type {AbortController | null} */
    this._abort = null;
  }

  /** @param {object} message to every other tab of this server */
  post(message) {
    try {
      this._channel?.postMessage(message);
    } catch {
      // a closed channel: this client is closing
    }
  }

  /**
   * Wait for the lock; `onLead()` runs once this tab holds it, which is until close().
   * @param {() => void} onLead
   * @param {() => boolean} closed
   */
  elect(onLead, closed) {
    this._abort = new AbortController();
    globalThis.navigator.locks
      .request(this.name, { signal: this._abort.signal }, () => {
        if (closed()) return undefined;
        // Held for as long as this tab leads: closing the tab releases it.
        return new Promise((resolve) => {
          this._release = () => resolve(undefined);
          onLead();
        });
      })
      .catch(() => {}); // aborted by close()
  }

  /** Give up leadership (another tab takes over) and leave the channel. */
  close() {
    this._release?.();
    this._abort?.abort();
    this._channel?.close();
  }
}
