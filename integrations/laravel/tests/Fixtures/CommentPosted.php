<?php

namespace Tidings\Laravel\Tests\Fixtures;

use Illuminate\Notifications\Notification;

/** No toTidings(): the channel falls back to toArray(). */
class CommentPosted extends Notification
{
    public function via($notifiable): array
    {
        return ['tidings'];
    }

    public function toArray($notifiable): array
    {
        return ['message' => 'New comment on your post', 'kind' => 'comment'];
    }
}
