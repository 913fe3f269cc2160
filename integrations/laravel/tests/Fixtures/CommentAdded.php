<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Notifications\Notification;

// --8<-- [start:stable-key]
class CommentAdded extends Notification
{
    /** @var int */
    public $comment;

    public function __construct(int $comment)
    {
        $this->comment = $comment;
    }

    public function via($notifiable): array
    {
        return ['tidings'];
    }

    public function toTidings($notifiable): array
    {
        return [
            'message' => "New comment #{$this->comment}",
            // The event, not this send: an observer that runs twice publishes once.
            'idempotency_key' => "comment-{$this->comment}-added",
        ];
    }
}
// --8<-- [end:stable-key]
