<?php

namespace Tidings\Laravel;

use Illuminate\Contracts\Container\Container;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Notifications\Notification;
use InvalidArgumentException;

/**
 * The `tidings` notification channel: `via()` returns 'tidings'.
 *
 * The message comes from the notification's toTidings($notifiable) (a string, or an array with
 * `message` and any of link, kind, data…), else toArray($notifiable) with a `message` key. The
 * user is the notifiable's routeNotificationForTidings($notification), else its key. The
 * notification's id (with the user's) is the idempotency key, so a retried send is stored once;
 * an `idempotency_key` from toTidings() (with the user's) replaces it, so a notification sent
 * twice for one event (an observer that runs twice) is stored once. The publish runs after the
 * surrounding database transaction commits (at once outside one).
 *
 * A publish that still fails (tidings down, a refused key, a 422) is reported to the app's
 * exception handler and the request goes on: the row it follows has committed. A queued
 * notification (ShouldQueue) raises instead, so the queue retries it with the same key.
 */
class TidingsChannel
{
    /** @var Tidings */
    private $tidings;

    /** @var Container */
    private $app;

    public function __construct(Tidings $tidings, Container $app)
    {
        $this->tidings = $tidings;
        $this->app = $app;
    }

    /** @param  mixed  $notifiable */
    public function send($notifiable, Notification $notification): void
    {
        $fields = $this->fields($notifiable, $notification);
        $message = (string) $fields['message'];
        unset($fields['message']);
        $user = $this->userId($notifiable, $notification);
        if ($user === null) {
            return; // nobody to tell, as Laravel's own channels do with an empty route
        }
        // Laravel gives every notification a UUID before sending it (one per notifiable, unless
        // the app set one); with the user, one notification sent to several users is one
        // publish each, and a retry of any of them is stored once.
        // A key from toTidings() names the event; with the user's, one event sent to several
        // users is one publish each (tidings keeps a key for one body).
        $fields['idempotency_key'] = isset($fields['idempotency_key'])
            ? "{$fields['idempotency_key']}:{$user}"
            : "{$notification->id}:{$user}";
        $queued = $notification instanceof ShouldQueue;
        $publish = function () use ($user, $message, $fields, $queued): void {
            try {
                $this->tidings->publish($user, $message, $fields);
            } catch (TidingsException $exc) {
                if ($queued) {
                    throw $exc;
                }
                Tidings::report($this->app, $exc);
            }
        };
        if ($this->app->bound('db.transactions')) {
            // Runs now when no transaction is open; a rolled-back one never runs it.
            $this->app->make('db.transactions')->addCallback($publish);
        } else {
            $publish();
        }
    }

    /**
     * @param  mixed  $notifiable
     * @return array<string, mixed>
     */
    private function fields($notifiable, Notification $notification): array
    {
        if (method_exists($notification, 'toTidings')) {
            $fields = $notification->toTidings($notifiable);
        } elseif (method_exists($notification, 'toArray')) {
            $fields = $notification->toArray($notifiable);
        } else {
            throw new InvalidArgumentException(get_class($notification) . ' has neither toTidings() nor toArray()');
        }
        if (is_string($fields)) {
            $fields = ['message' => $fields];
        }
        if (! is_array($fields) || ! isset($fields['message'])) {
            throw new InvalidArgumentException(get_class($notification) . ': toTidings()/toArray() must give a `message`');
        }

        return $fields;
    }

    /**
     * @param  mixed  $notifiable
     */
    private function userId($notifiable, Notification $notification): ?string
    {
        if (method_exists($notifiable, 'routeNotificationFor')) {
            $route = $notifiable->routeNotificationFor('tidings', $notification);
            if ($route !== null) {
                return (string) $route;
            }
        }
        if (method_exists($notifiable, 'getKey')) {
            $key = $notifiable->getKey();

            return $key === null ? null : (string) $key;
        }

        return null;
    }
}
