<?php

// --8<-- [start:observer]
namespace App\Observers;

use App\Models\Notification;
use Tidings\Laravel\Facades\Tidings;

class NotificationObserver
{
    // Publish once the transaction that saved the row has committed (at once outside one).
    public $afterCommit = true;

    public function created(Notification $notification): void
    {
        // Retried on network errors and 503 only, with this key: stored once.
        Tidings::publish($notification->user_id, $notification->message, [
            'link' => $notification->link,
            'idempotency_key' => 'notification-' . $notification->getKey(),
        ]);
    }
}
// --8<-- [end:observer]
